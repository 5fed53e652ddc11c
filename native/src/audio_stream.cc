// A resampler for audio that arrives in pieces (a microphone): the same polyphase filter as the
// one-shot `resample`, fed chunk by chunk. It keeps only the input still needed by future
// outputs, so the concatenated outputs equal resampling the whole signal at once, bit for bit.
#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "audio_dsp.h"
#include "modules.h"

namespace wx {
namespace audio {
namespace {

class StreamResamplerWrap : public Napi::ObjectWrap<StreamResamplerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "StreamResampler", {InstanceMethod("push", &StreamResamplerWrap::Push), InstanceMethod("flush", &StreamResamplerWrap::Flush)});
  }

  explicit StreamResamplerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StreamResamplerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
      Napi::TypeError::New(env, "new StreamResampler(from: number, to: number)").ThrowAsJavaScriptException();
      return;
    }
    try {
      rs_ = std::make_unique<Resampler>(int64_t(info[0].As<Napi::Number>().DoubleValue()), int64_t(info[1].As<Napi::Number>().DoubleValue()));
    } catch (const AudioFailure& f) {
      Napi::Error e = Napi::Error::New(env, f.message);
      e.Set("code", Napi::String::New(env, "audio." + f.code));
      e.ThrowAsJavaScriptException();
      return;
    }
    int64_t a, b;
    rs_->InputSpan(0, 1, &a, &b);
    half_ = -a;
    taps_ = b - a;
    // The first outputs look back before the signal starts: zeros there.
    base_ = a;
    pending_.assign(size_t(-a), 0.0f);
  }

 private:
  Napi::Value Push(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!rs_) return env.Null();
    if (flushed_) {
      Napi::Error::New(env, "StreamResampler: push after flush").ThrowAsJavaScriptException();
      return env.Null();
    }
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      Napi::TypeError::New(env, "StreamResampler.push(chunk: Float32Array)").ThrowAsJavaScriptException();
      return env.Null();
    }
    Napi::Float32Array chunk = info[0].As<Napi::Float32Array>();
    pending_.insert(pending_.end(), chunk.Data(), chunk.Data() + chunk.ElementLength());
    received_ += int64_t(chunk.ElementLength());
    return Produce(env, INT64_MAX);
  }

  Napi::Value Flush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!rs_) return env.Null();
    if (flushed_) return Napi::Float32Array::New(env, 0);
    flushed_ = true;
    // The signal ends with silence; enough of it to finish every output the input implies.
    pending_.insert(pending_.end(), size_t(taps_), 0.0f);
    return Produce(env, rs_->OutputLength(received_));
  }

  // Every output from next_ whose input is all there (and below `limit`).
  Napi::Value Produce(Napi::Env env, int64_t limit) {
    const int64_t avail = base_ + int64_t(pending_.size());
    const int64_t q = avail + half_ - taps_;  // the last output n needs floor(n·down/up) ≤ q
    int64_t end = next_;
    if (q >= 0) {
      const int64_t up = rs_->to(), down = rs_->from();
      const int64_t g = Gcd(up, down);
      end = ((q + 1) * (up / g) - 1) / (down / g) + 1;
    }
    end = std::min(end, limit);
    if (end <= next_) return Napi::Float32Array::New(env, 0);
    Napi::Float32Array out = Napi::Float32Array::New(env, size_t(end - next_));
    rs_->Block(pending_.data(), base_, next_, end, out.Data());
    next_ = end;
    int64_t a, b;
    rs_->InputSpan(next_, next_ + 1, &a, &b);
    if (a > base_) {
      const size_t drop = size_t(std::min<int64_t>(a - base_, int64_t(pending_.size())));
      pending_.erase(pending_.begin(), pending_.begin() + drop);
      base_ += int64_t(drop);
    }
    return out;
  }

  static int64_t Gcd(int64_t a, int64_t b) {
    while (b) {
      const int64_t t = a % b;
      a = b;
      b = t;
    }
    return a;
  }

  std::unique_ptr<Resampler> rs_;
  std::vector<float> pending_;  // input samples from index base_ on
  int64_t base_ = 0, half_ = 0, taps_ = 0;
  int64_t received_ = 0;  // real input samples pushed
  int64_t next_ = 0;      // index of the next output sample
  bool flushed_ = false;
};

}  // namespace
}  // namespace audio

void RegisterAudioStream(Napi::Env env, Napi::Object exports) { exports.Set("StreamResampler", audio::StreamResamplerWrap::Define(env)); }

}  // namespace wx
