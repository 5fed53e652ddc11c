// Memory the engine asks the system for in particular ways: buffers in 2 MB pages for what every
// decoder step streams, and giving freed memory back when the daemon goes idle.
#include <napi.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "modules.h"

namespace wx {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

// hugePageBuffer(bytes) → ArrayBuffer of `bytes` zeros, in 2 MB pages where the kernel allows
// it: for the decoder's cross-attention keys/values, which every step streams (4.6 MB per row for
// tiny; the TLB's reach over 4 KB pages is a few MB, and in a virtual machine a miss walks two
// page tables). Measured: a decoder step ~5% faster at 1 row, 2–4% at 8 (in-process A/B, both
// orders). On Linux the pages come straight from mmap, so they are zero and take memory only
// once touched, as a typed array's would.
Napi::Value JsHugePageBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 1) {
    Napi::TypeError::New(env, "hugePageBuffer(bytes > 0)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t bytes = size_t(info[0].As<Napi::Number>().DoubleValue());
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Mapped with a huge page of slack, then trimmed to a 2 MB-aligned start.
  const size_t span = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = mmap(nullptr, span + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    Napi::Error::New(env, "hugePageBuffer: cannot map " + std::to_string(bytes) + " bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const uintptr_t start = (reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) / kHugePage * kHugePage;
  const size_t head = start - reinterpret_cast<uintptr_t>(raw);
  if (head) munmap(raw, head);
  if (kHugePage - head) munmap(reinterpret_cast<char*>(start) + span, kHugePage - head);
  void* p = reinterpret_cast<void*>(start);
  madvise(p, span, MADV_HUGEPAGE);
  return Napi::ArrayBuffer::New(env, p, bytes, [span](Napi::Env, void* data) { munmap(data, span); });
#else
  void* p = std::calloc(bytes, 1);
  if (!p) {
    Napi::Error::New(env, "hugePageBuffer: cannot allocate " + std::to_string(bytes) + " bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::ArrayBuffer::New(env, p, bytes, [](Napi::Env, void* data) { std::free(data); });
#endif
}

// trimMemory() → whether the allocator returned any memory to the system (false where it cannot
// tell or has nothing to trim). For a daemon going idle: a long transcription leaves the C heap
// grown (the addon's scratch, ONNX Runtime's buffers) and glibc keeps freed pages in its arenas,
// so an always-on daemon would hold the peak of its busiest hour.
Napi::Value JsTrimMemory(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

void RegisterMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("hugePageBuffer", Napi::Function::New(env, JsHugePageBuffer, "hugePageBuffer"));
  exports.Set("trimMemory", Napi::Function::New(env, JsTrimMemory, "trimMemory"));
}
}  // namespace wx
