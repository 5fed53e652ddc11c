// Reductions over one row of decoder logits (~52k floats), run for every row at every decoder
// step: the maximum, the arg-max and log Σ exp. In JavaScript log Σ exp cost ~0.5 ms a row
// (Math.exp per element), a quarter of a whole transcription's time; here it is a vector
// polynomial exp, a few microseconds a row.
#include <napi.h>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 warns inside its own AVX-512 headers (the lane reduction's intrinsic).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "modules.h"
#include "simd.h"

namespace wx {
namespace logits {
namespace {

using namespace simd;

struct Row {
  const float* data;
  size_t from;
  size_t to;
};

// (x: Float32Array, from?: number, to?: number) with 0 ≤ from ≤ to ≤ x.length.
bool ReadRow(const Napi::CallbackInfo& info, const char* name, Row* row) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    Napi::TypeError::New(env, std::string(name) + "(x: Float32Array, from?: number, to?: number)").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Float32Array x = info[0].As<Napi::Float32Array>();
  const size_t len = x.ElementLength();
  double from = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  double to = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : double(len);
  if (!(from >= 0 && to >= from && to <= double(len))) {
    Napi::RangeError::New(env, std::string(name) + ": range out of bounds").ThrowAsJavaScriptException();
    return false;
  }
  row->data = x.Data();
  row->from = size_t(from);
  row->to = size_t(to);
  return true;
}

float MaxOf(const Row& r) {
  const float* x = r.data;
  size_t i = r.from;
  float m = -std::numeric_limits<float>::infinity();
  vf vm = Splat(m);
  for (; i + W <= r.to; i += W) vm = Max(Load(x + i), vm);  // NaN never wins: the lanes hold none
  m = MaxLanes(vm);
  for (; i < r.to; i++) m = x[i] > m ? x[i] : m;
  return m;
}

Napi::Value JsMaxOf(const Napi::CallbackInfo& info) {
  Row r;
  if (!ReadRow(info, "maxOf", &r)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), MaxOf(r));
}

// The first index of the maximum (NaN never wins), or -1 for an empty range or all -inf/NaN,
// like the JavaScript loop it replaces.
Napi::Value JsArgmax(const Napi::CallbackInfo& info) {
  Row r;
  if (!ReadRow(info, "argmax", &r)) return info.Env().Undefined();
  const float m = MaxOf(r);
  double best = -1;
  if (m > -std::numeric_limits<float>::infinity()) {
    for (size_t i = r.from; i < r.to; i++) {
      if (r.data[i] == m) {
        best = double(i);
        break;
      }
    }
  }
  return Napi::Number::New(info.Env(), best);
}

Napi::Value JsLogSumExp(const Napi::CallbackInfo& info) {
  Row r;
  if (!ReadRow(info, "logSumExp", &r)) return info.Env().Undefined();
  const float m = MaxOf(r);
  if (!(m > -std::numeric_limits<float>::infinity())) return Napi::Number::New(info.Env(), -std::numeric_limits<double>::infinity());
  const float* x = r.data;
  size_t i = r.from;
  const vf vm = Splat(m);
  // Float lanes summed over short blocks, blocks summed in double: float rounding stays ~1e-7.
  double s = 0;
  while (i + W <= r.to) {
    vf acc = Splat(0.0f);
    for (int k = 0; k < 32 && i + W <= r.to; k++, i += W) {
      const vf v = Load(x + i);
      acc += Select(v == v, ExpNonPositive(v - vm), Splat(0.0f));  // NaN adds nothing, as in JS
    }
    for (int l = 0; l < W; l++) s += double(acc[l]);
  }
  for (; i < r.to; i++) {
    if (x[i] == x[i]) s += std::exp(double(x[i]) - double(m));
  }
  return Napi::Number::New(info.Env(), double(m) + std::log(s));
}

}  // namespace
}  // namespace logits

void RegisterLogits(Napi::Env env, Napi::Object exports) {
  exports.Set("logitsMaxOf", Napi::Function::New(env, logits::JsMaxOf, "logitsMaxOf"));
  exports.Set("logitsArgmax", Napi::Function::New(env, logits::JsArgmax, "logitsArgmax"));
  exports.Set("logitsLogSumExp", Napi::Function::New(env, logits::JsLogSumExp, "logitsLogSumExp"));
}
}  // namespace wx
