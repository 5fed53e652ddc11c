// What this CPU can do at best, for the roofline benchmark (bench/roofline.ts): the rate of int8
// dot-product instructions with nothing else to do, and the rate at which its cores read memory
// that is not in cache. The engine's kernels are judged against these two numbers: an encoder
// layer is so many dot products, a decoder step so many bytes read.
#include <napi.h>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 warns inside its own AVX-512 headers (an undefined vector passed to a lane extraction).
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>

#include "modules.h"
#include "napi_args.h"
#include "pool.h"
#include "simd.h"

#if WX_VNNI
#include <immintrin.h>
#endif

namespace wx {
namespace limits {
namespace {

using Clock = std::chrono::steady_clock;

// Independent accumulator chains: a dot product's latency is several cycles, so fewer chains
// would measure the latency instead of the throughput (8 chains already reach it here; 16 leave
// room for wider cores).
constexpr int kChains = 16;

#if WX_VNNI
// `count` dot products (64 int8 multiply-adds each) on this thread; returns a value derived from
// them so the compiler cannot drop the loop.
int64_t DotProducts(int64_t count) {
  __m512i acc[kChains];
  for (int i = 0; i < kChains; i++) acc[i] = _mm512_set1_epi32(i);
  __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x01010101);
  for (int64_t n = 0; n < count / kChains; n++) {
    for (int i = 0; i < kChains; i++) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    // Opaque to the optimiser, so the operands stay in registers and the loop is not folded.
    __asm__ volatile("" : "+v"(a), "+v"(b));
  }
  int64_t sum = 0;
  for (int i = 0; i < kChains; i++) sum += _mm512_reduce_add_epi32(acc[i]);
  return sum;
}
#endif

// vnniPeak(threads, count) → { dotsPerNs, seconds }: `count` int8 dot-product instructions on
// each of `threads` threads at once, nothing else; 0 where the CPU has none (no VNNI).
Napi::Value JsVnniPeak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "vnniPeak(threads, count)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int threads = std::max(1, Int(info[0]));
  const int64_t count = std::max<int64_t>(kChains, int64_t(info[1].As<Napi::Number>().DoubleValue()));
  Napi::Object out = Napi::Object::New(env);
#if WX_VNNI
  std::atomic<int64_t> sink{0};
  const auto start = Clock::now();
  SharedPool().Run(threads, [&](int, int) { sink += DotProducts(count); });
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  out.Set("dotsPerNs", Napi::Number::New(env, double(count / kChains * kChains) * threads / ns));
  out.Set("seconds", Napi::Number::New(env, ns / 1e9));
  out.Set("check", Napi::Number::New(env, double(sink.load() & 0xffff)));
#else
  out.Set("dotsPerNs", Napi::Number::New(env, 0));
  out.Set("seconds", Napi::Number::New(env, 0));
  out.Set("check", Napi::Number::New(env, 0));
#endif
  return out;
}

// readBandwidth(bytes, threads, passes) → { bytesPerNs }: `threads` threads each sum their share
// of a `bytes` buffer (much larger than the caches), `passes` times; the best pass counts.
Napi::Value JsReadBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "readBandwidth(bytes, threads, passes)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t bytes = size_t(std::max(1.0, info[0].As<Napi::Number>().DoubleValue())) / 64 * 64;
  const int threads = std::max(1, Int(info[1])), passes = std::max(1, Int(info[2]));
  if (bytes < 64) {
    Napi::RangeError::New(env, "readBandwidth: at least 64 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::unique_ptr<uint8_t[]> buffer(new uint8_t[bytes]);
  // Written by the threads that read it, so each share's pages are where its thread runs.
  SharedPool().Run(threads, [&](int part, int parts) {
    const size_t from = bytes / 64 * part / parts * 64, to = bytes / 64 * (part + 1) / parts * 64;
    std::memset(buffer.get() + from, part + 1, to - from);
  });
  double best = 0;
  std::atomic<uint64_t> sink{0};
  for (int p = 0; p < passes; p++) {
    const auto start = Clock::now();
    SharedPool().Run(threads, [&](int part, int parts) {
      const size_t from = bytes / 64 * part / parts * 64, to = bytes / 64 * (part + 1) / parts * 64;
      using simd::vi;
      vi a = vi{}, b = vi{};
      for (size_t o = from; o + 128 <= to; o += 128) {
        vi x, y;
        std::memcpy(&x, buffer.get() + o, 64);
        std::memcpy(&y, buffer.get() + o + 64, 64);
        a += x;
        b += y;
      }
      uint64_t s = 0;
      for (int l = 0; l < simd::W; l++) s += uint64_t(a[l] + b[l]);
      sink += s;
    });
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    best = std::max(best, double(bytes) / ns);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("bytesPerNs", Napi::Number::New(env, best));
  out.Set("check", Napi::Number::New(env, double(sink.load() & 0xffff)));
  return out;
}

}  // namespace
}  // namespace limits

void RegisterMachineLimits(Napi::Env env, Napi::Object exports) {
  exports.Set("vnniPeak", Napi::Function::New(env, limits::JsVnniPeak, "vnniPeak"));
  exports.Set("readBandwidth", Napi::Function::New(env, limits::JsReadBandwidth, "readBandwidth"));
}
}  // namespace wx
