// Whisper's log-mel spectrogram.
//
// Frames are processed W at a time in "structure of arrays" form: element n of the block holds
// sample n of W consecutive frames in one SIMD vector, so the FFT butterflies, the power
// spectrum, the sparse mel product and the vector log10 are all plain vertical vector
// arithmetic with no shuffles. The n_fft-point real FFT is an n_fft/2-point complex FFT
// (mixed-radix Stockham, radices 4/2/3/5 with dedicated kernels) plus the usual split step;
// n_fft = 400 gives 200 = 4·2·5·5.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>

#include "audio_dsp.h"
#include "modules.h"
#include "simd.h"

namespace wx {
namespace audio {
namespace {

using namespace simd;

// log10 for normal positive floats: exponent + atanh series of the mantissa in
// [√½, √2) (|s| ≤ 0.172, so five terms reach float precision).
inline vf Log10(vf x) {
  const vi bits = (vi)x;
  vi e = ((bits >> 23) & 0xff) - 127;
  vf m = (vf)((bits & 0x007fffff) | 0x3f800000);
  const vi big = m > Splat(1.41421356f);
  m = (vf)(((vi)(m * 0.5f) & big) | ((vi)m & ~big));
  e -= big;
  const vf s = (m - 1.0f) / (m + 1.0f);
  const vf s2 = s * s;
  vf p = s2 * (1.0f / 9) + (1.0f / 7);
  p = p * s2 + (1.0f / 5);
  p = p * s2 + (1.0f / 3);
  p = p * s2 + 1.0f;
  const vf ln = 2.0f * s * p + __builtin_convertvector(e, vf) * 0.6931471805599453f;
  return ln * 0.4342944819032518f;
}

double HzToMel(double f) {
  const double fsp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fsp, logstep = std::log(6.4) / 27.0;
  return f < minLogHz ? f / fsp : minLogMel + std::log(f / minLogHz) / logstep;
}
double MelToHz(double m) {
  const double fsp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fsp, logstep = std::log(6.4) / 27.0;
  return m < minLogMel ? m * fsp : minLogHz * std::exp(logstep * (m - minLogMel));
}

inline int64_t Reflect(int64_t i, int64_t len) {
  if (len <= 1) return 0;
  const int64_t period = 2 * (len - 1);
  i %= period;
  if (i < 0) i += period;
  return i >= len ? period - i : i;
}

}  // namespace

MelPlan::MelPlan(int nMels, int nFft, int hop, int sampleRate, double fMax) : nMels_(nMels), nFft_(nFft), hop_(hop), half_(nFft / 2) {
  if (nMels < 1 || nMels > 512 || nFft < 8 || nFft > 65536 || nFft % 2 != 0 || hop < 1 || hop > nFft * 4 || sampleRate < 1000) {
    throw AudioFailure{"unsupported", "unsupported mel settings (n_mels " + std::to_string(nMels) + ", n_fft " + std::to_string(nFft) + ", hop " +
                                          std::to_string(hop) + ", sampling rate " + std::to_string(sampleRate) + ")"};
  }
  window_.resize(nFft);
  for (int n = 0; n < nFft; n++) window_[n] = float(0.5 - 0.5 * std::cos(2 * M_PI * n / nFft));  // periodic Hann

  // Stockham stages over N2 = nFft/2 points.
  const int n2 = nFft / 2;
  std::vector<int> radices;
  int rest = n2;
  while (rest % 4 == 0) radices.push_back(4), rest /= 4;
  for (int p : {2, 3, 5}) {
    while (rest % p == 0) radices.push_back(p), rest /= p;
  }
  for (int p = 7; rest > 1; p += 2) {
    while (rest % p == 0) radices.push_back(p), rest /= p;
  }
  int n = n2, stride = 1;
  for (int p : radices) {
    FftStage st{p, n / p, stride, twRe_.size(), 0};
    for (int j = 0; j < st.m; j++) {
      for (int k = 1; k < p; k++) {
        const double a = -2 * M_PI * double(j) * k / n;
        twRe_.push_back(float(std::cos(a)));
        twIm_.push_back(float(std::sin(a)));
      }
    }
    st.dft = twRe_.size();
    if (p != 2 && p != 4 && p != 5) {
      for (int k = 0; k < p; k++) {
        for (int r = 0; r < p; r++) {
          const double a = -2 * M_PI * double(r * k % p) / p;
          twRe_.push_back(float(std::cos(a)));
          twIm_.push_back(float(std::sin(a)));
        }
      }
    }
    stages_.push_back(st);
    n /= p;
    stride *= p;
  }
  for (int k = 0; k <= n2; k++) {
    const double a = -2 * M_PI * k / nFft;
    postRe_.push_back(float(std::cos(a)));
    postIm_.push_back(float(std::sin(a)));
  }

  // Slaney-scale triangular filters with area normalisation (what librosa and Hugging Face's
  // WhisperFeatureExtractor build), kept sparse: each filter touches a handful of bins.
  const int bins = n2 + 1;
  const double melMax = HzToMel(fMax);
  std::vector<double> edges(nMels + 2);
  for (int i = 0; i < nMels + 2; i++) edges[i] = MelToHz(HzToMel(0.0) + (melMax - HzToMel(0.0)) * i / (nMels + 1));
  const double nyquist = double(sampleRate / 2);
  for (int m = 0; m < nMels; m++) {
    const double enorm = 2.0 / (edges[m + 2] - edges[m]);
    int first = -1, last = -1;
    std::vector<float> w(bins, 0.0f);
    for (int k = 0; k < bins; k++) {
      const double f = nyquist * k / (bins - 1);
      const double down = (f - edges[m]) / (edges[m + 1] - edges[m]);
      const double up = (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1]);
      const double v = std::max(0.0, std::min(down, up)) * enorm;
      if (v > 0) {
        w[k] = float(v);
        if (first < 0) first = k;
        last = k;
      }
    }
    if (first < 0) first = last = 0;  // an empty filter (more mels than bins): one zero weight
    first_.push_back(first);
    count_.push_back(last - first + 1);
    offset_.push_back(weights_.size());
    for (int k = first; k <= last; k++) weights_.push_back(w[k]);
  }
}

size_t MelPlan::ScratchFloats() const {
  const size_t n2 = size_t(nFft_ / 2);
  return (4 * n2 + (n2 + 1) + size_t(nMels_)) * W + size_t(nFft_);
}

void MelPlan::Block(const Job& job, int64_t frames, int64_t f0, int lanes, float* scratch) const {
  const int n2 = nFft_ / 2;
  vf* re = reinterpret_cast<vf*>(scratch);
  vf* im = re + n2;
  vf* re2 = im + n2;
  vf* im2 = re2 + n2;
  vf* power = im2 + n2;
  vf* mel = power + (n2 + 1);
  float* tmp = reinterpret_cast<float*>(mel + nMels_);
  const float* win = window_.data();

  // Gather: lane l holds frame f0 + l, windowed, even samples as real and odd as imaginary parts.
  for (int l = 0; l < W; l++) {
    if (l >= lanes) {
      for (int i = 0; i < n2; i++) re[i][l] = im[i][l] = 0.0f;
      continue;
    }
    const int64_t start = (f0 + l) * hop_ - half_;
    const float* src;
    if (start >= 0 && start + nFft_ <= job.real) {
      src = job.x + start;
    } else {
      // Frames touching the edges see the reflect padding and the zero padding.
      for (int i = 0; i < nFft_; i++) {
        const int64_t idx = Reflect(start + i, job.padded);
        tmp[i] = idx < job.real ? job.x[idx] : 0.0f;
      }
      src = tmp;
    }
    for (int i = 0; i < n2; i++) {
      re[i][l] = src[2 * i] * win[2 * i];
      im[i][l] = src[2 * i + 1] * win[2 * i + 1];
    }
  }

  // Complex FFT of n2 points (Stockham autosort: ping-pong between the two buffers).
  vf *xr = re, *xi = im, *yr = re2, *yi = im2;
  for (const FftStage& st : stages_) {
    const int p = st.radix, m = st.m, s = st.stride;
    const float* twr = &twRe_[st.twiddle];
    const float* twi = &twIm_[st.twiddle];
    for (int j = 0; j < m; j++) {
      const float* wr = twr + size_t(j) * (p - 1);
      const float* wi = twi + size_t(j) * (p - 1);
      for (int q = 0; q < s; q++) {
        const int in0 = q + s * j, out0 = q + s * p * j;
        if (p == 4) {
          const vf a0r = xr[in0], a0i = xi[in0], a1r = xr[in0 + s * m], a1i = xi[in0 + s * m];
          const vf a2r = xr[in0 + 2 * s * m], a2i = xi[in0 + 2 * s * m], a3r = xr[in0 + 3 * s * m], a3i = xi[in0 + 3 * s * m];
          const vf t0r = a0r + a2r, t0i = a0i + a2i, t1r = a0r - a2r, t1i = a0i - a2i;
          const vf t2r = a1r + a3r, t2i = a1i + a3i, t3r = a1r - a3r, t3i = a1i - a3i;
          const vf b1r = t1r + t3i, b1i = t1i - t3r;  // t1 − i·t3
          const vf b2r = t0r - t2r, b2i = t0i - t2i;
          const vf b3r = t1r - t3i, b3i = t1i + t3r;  // t1 + i·t3
          yr[out0] = t0r + t2r;
          yi[out0] = t0i + t2i;
          yr[out0 + s] = b1r * wr[0] - b1i * wi[0];
          yi[out0 + s] = b1r * wi[0] + b1i * wr[0];
          yr[out0 + 2 * s] = b2r * wr[1] - b2i * wi[1];
          yi[out0 + 2 * s] = b2r * wi[1] + b2i * wr[1];
          yr[out0 + 3 * s] = b3r * wr[2] - b3i * wi[2];
          yi[out0 + 3 * s] = b3r * wi[2] + b3i * wr[2];
        } else if (p == 2) {
          const vf a0r = xr[in0], a0i = xi[in0], a1r = xr[in0 + s * m], a1i = xi[in0 + s * m];
          const vf dr = a0r - a1r, di = a0i - a1i;
          yr[out0] = a0r + a1r;
          yi[out0] = a0i + a1i;
          yr[out0 + s] = dr * wr[0] - di * wi[0];
          yi[out0 + s] = dr * wi[0] + di * wr[0];
        } else if (p == 5) {
          const float c1 = 0.30901699437494745f, c2 = -0.8090169943749473f, s1 = 0.9510565162951535f, s2 = 0.5877852522924732f;
          const vf a0r = xr[in0], a0i = xi[in0];
          const vf a1r = xr[in0 + s * m], a1i = xi[in0 + s * m], a2r = xr[in0 + 2 * s * m], a2i = xi[in0 + 2 * s * m];
          const vf a3r = xr[in0 + 3 * s * m], a3i = xi[in0 + 3 * s * m], a4r = xr[in0 + 4 * s * m], a4i = xi[in0 + 4 * s * m];
          const vf u1r = a1r + a4r, u1i = a1i + a4i, u2r = a2r + a3r, u2i = a2i + a3i;
          const vf v1r = a1r - a4r, v1i = a1i - a4i, v2r = a2r - a3r, v2i = a2i - a3i;
          const vf pr = a0r + c1 * u1r + c2 * u2r, pi = a0i + c1 * u1i + c2 * u2i;  // k = 1, 4
          const vf qr = a0r + c2 * u1r + c1 * u2r, qi = a0i + c2 * u1i + c1 * u2i;  // k = 2, 3
          const vf gr = s1 * v1r + s2 * v2r, gi = s1 * v1i + s2 * v2i;
          const vf hr = s2 * v1r - s1 * v2r, hi = s2 * v1i - s1 * v2i;
          // b1 = p − i·g, b4 = p + i·g, b2 = q − i·h, b3 = q + i·h
          const vf br[4] = {pr + gi, qr + hi, qr - hi, pr - gi};
          const vf bi[4] = {pi - gr, qi - hr, qi + hr, pi + gr};
          yr[out0] = a0r + u1r + u2r;
          yi[out0] = a0i + u1i + u2i;
          for (int k = 1; k < 5; k++) {
            yr[out0 + k * s] = br[k - 1] * wr[k - 1] - bi[k - 1] * wi[k - 1];
            yi[out0 + k * s] = br[k - 1] * wi[k - 1] + bi[k - 1] * wr[k - 1];
          }
        } else {
          const float* dr = &twRe_[st.dft];
          const float* di = &twIm_[st.dft];
          for (int k = 0; k < p; k++) {
            vf accr = {}, acci = {};
            for (int r = 0; r < p; r++) {
              const vf ar = xr[in0 + r * s * m], ai = xi[in0 + r * s * m];
              accr += ar * dr[k * p + r] - ai * di[k * p + r];
              acci += ar * di[k * p + r] + ai * dr[k * p + r];
            }
            if (k == 0) {
              yr[out0] = accr;
              yi[out0] = acci;
            } else {
              yr[out0 + k * s] = accr * wr[k - 1] - acci * wi[k - 1];
              yi[out0 + k * s] = accr * wi[k - 1] + acci * wr[k - 1];
            }
          }
        }
      }
    }
    std::swap(xr, yr);
    std::swap(xi, yi);
  }

  // Split the packed spectrum into the real signal's bins 0..n2 and take the power.
  for (int k = 0; k <= n2; k++) {
    const int a = k % n2, b = (n2 - k) % n2;
    const vf ar = xr[a], ai = xi[a], br = xr[b], bi = -xi[b];
    const vf er = (ar + br) * 0.5f, ei = (ai + bi) * 0.5f;
    const vf orr = (ai - bi) * 0.5f, oi = (br - ar) * 0.5f;
    const float c = postRe_[k], sn = postIm_[k];
    const vf Xr = er + orr * c - oi * sn, Xi = ei + oi * c + orr * sn;
    power[k] = Xr * Xr + Xi * Xi;
  }

  const vf floor = Splat(1e-10f);
  for (int m = 0; m < nMels_; m++) {
    const float* w = &weights_[offset_[m]];
    const vf* pw = power + first_[m];
    vf acc = {};
    for (int t = 0; t < count_[m]; t++) acc += pw[t] * w[t];
    const vf lg = Log10(Max(acc, floor));
    float* dst = job.out + size_t(m) * frames + f0;
    if (lanes == W) std::memcpy(dst, &lg, sizeof(lg));
    else
      for (int l = 0; l < lanes; l++) dst[l] = lg[l];
  }
}

void MelPlan::DenseFilters(float* dst) const {
  const int bins = nFft_ / 2 + 1;
  for (int m = 0; m < nMels_; m++) {
    for (int t = 0; t < count_[m]; t++) dst[size_t(m) * bins + first_[m] + t] = weights_[offset_[m] + t];
  }
}

void MelPlan::Compute(const std::vector<Job>& jobs, int threads) const {
  // Work items: (job, first frame) blocks of W frames.
  std::vector<std::pair<size_t, int64_t>> items;
  for (size_t j = 0; j < jobs.size(); j++) {
    const int64_t frames = Frames(jobs[j].padded, hop_);
    for (int64_t f = 0; f < frames; f += W) items.emplace_back(j, f);
  }
  // Small jobs are not worth a thread start (~50 µs).
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, int64_t(items.size()) / 64)));
  const size_t chunk = 8;
  std::atomic<size_t> next{0};
  std::atomic<int> workers{0};
  RunParallel(threads, [&](int) {
    std::vector<vf> scratch;
    try {
      scratch.resize((ScratchFloats() + W - 1) / W);
    } catch (const std::bad_alloc&) {
      return;  // the other workers take this one's share
    }
    workers++;
    for (size_t i0; (i0 = next.fetch_add(chunk)) < items.size();) {
      for (size_t i = i0; i < std::min(items.size(), i0 + chunk); i++) {
        const Job& job = jobs[items[i].first];
        const int64_t frames = Frames(job.padded, hop_);
        Block(job, frames, items[i].second, int(std::min<int64_t>(W, frames - items[i].second)), reinterpret_cast<float*>(scratch.data()));
      }
    }
  });
  if (workers == 0) throw std::bad_alloc();
  // Whisper's dynamic range: floor at (max − 8), then scale to roughly [−1, 1].
  std::atomic<size_t> nextJob{0};
  RunParallel(int(std::min<size_t>(size_t(threads), jobs.size())), [&](int) {
    for (size_t j; (j = nextJob.fetch_add(1)) < jobs.size();) {
      const size_t n = size_t(Frames(jobs[j].padded, hop_)) * nMels_;
      float* o = jobs[j].out;
      float mx = -INFINITY;
      for (size_t i = 0; i < n; i++) mx = std::max(mx, o[i]);
      const float lo = mx - 8.0f;
      for (size_t i = 0; i < n; i++) o[i] = (std::max(o[i], lo) + 4.0f) * 0.25f;
    }
  });
}

namespace {

Napi::Error CodedError(Napi::Env env, const AudioFailure& f) {
  Napi::Error e = Napi::Error::New(env, f.message);
  e.Set("code", Napi::String::New(env, "audio." + f.code));
  return e;
}

// JS: new MelPlan(nMels, nFft, hop, sampleRate, fMax)
//   .compute(samples: Float32Array, starts: Float64Array, reals: Float64Array, padded: number,
//            out: Float32Array, threads: number) — job i reads samples[starts[i] …+reals[i]],
//            zero-padded to `padded` samples, into out[i·nMels·frames …].
//   .computeAsync(same) → Promise<void> (worker thread; the arrays are kept alive meanwhile).
class MelPlanWrap : public Napi::ObjectWrap<MelPlanWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MelPlan",
                       {InstanceMethod("compute", &MelPlanWrap::ComputeSync), InstanceMethod("computeAsync", &MelPlanWrap::ComputeAsync),
                        InstanceMethod("filters", &MelPlanWrap::Filters)});
  }
  explicit MelPlanWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MelPlanWrap>(info) {
    Napi::Env env = info.Env();
    for (size_t i = 0; i < 5; i++) {
      if (info.Length() <= i || !info[i].IsNumber()) {
        Napi::TypeError::New(env, "new MelPlan(nMels, nFft, hop, sampleRate, fMax)").ThrowAsJavaScriptException();
        return;
      }
    }
    try {
      plan_ = std::make_unique<MelPlan>(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value(),
                                        info[3].As<Napi::Number>().Int32Value(), info[4].As<Napi::Number>().DoubleValue());
    } catch (const AudioFailure& f) {
      CodedError(env, f).ThrowAsJavaScriptException();
    }
  }

 private:
  // Validates the arguments and builds the jobs; returns false (with a JS exception) if bad.
  bool Jobs(const Napi::CallbackInfo& info, std::vector<MelPlan::Job>* jobs, int* threads) {
    Napi::Env env = info.Env();
    auto fail = [&](const char* why) {
      Napi::TypeError::New(env, std::string("MelPlan.compute: ") + why).ThrowAsJavaScriptException();
      return false;
    };
    if (!plan_) return fail("plan not constructed");
    if (info.Length() < 6 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[3].IsNumber() || !info[4].IsTypedArray() ||
        !info[5].IsNumber())
      return fail("(samples, starts, reals, padded, out, threads)");
    auto samples = info[0].As<Napi::TypedArray>();
    auto starts = info[1].As<Napi::TypedArray>();
    auto reals = info[2].As<Napi::TypedArray>();
    auto out = info[4].As<Napi::TypedArray>();
    if (samples.TypedArrayType() != napi_float32_array || out.TypedArrayType() != napi_float32_array) return fail("samples and out must be Float32Array");
    if (starts.TypedArrayType() != napi_float64_array || reals.TypedArrayType() != napi_float64_array || starts.ElementLength() != reals.ElementLength())
      return fail("starts and reals must be Float64Arrays of one length");
    const double paddedD = info[3].As<Napi::Number>().DoubleValue();
    if (!(paddedD >= 0 && paddedD < 9e15)) return fail("bad padded length");
    const int64_t padded = int64_t(paddedD);
    const int64_t frames = MelPlan::Frames(padded, plan_->hop());
    const size_t per = size_t(frames) * plan_->nMels();
    const size_t count = starts.ElementLength();
    if (out.ElementLength() < per * count) return fail("out is too small");
    const float* x = info[0].As<Napi::Float32Array>().Data();
    const int64_t n = int64_t(samples.ElementLength());
    const double* st = info[1].As<Napi::Float64Array>().Data();
    const double* rl = info[2].As<Napi::Float64Array>().Data();
    float* o = info[4].As<Napi::Float32Array>().Data();
    for (size_t i = 0; i < count; i++) {
      const int64_t s = int64_t(st[i]), r = int64_t(rl[i]);
      if (!(st[i] >= 0) || !(rl[i] >= 0) || s > n || r > n - s || r > padded) return fail("window outside the samples");
      jobs->push_back({x + s, r, padded, o + per * i});
    }
    *threads = std::max(1, std::min(64, info[5].As<Napi::Number>().Int32Value()));
    return true;
  }

  Napi::Value ComputeSync(const Napi::CallbackInfo& info) {
    std::vector<MelPlan::Job> jobs;
    int threads = 1;
    if (!Jobs(info, &jobs, &threads)) return info.Env().Undefined();
    try {
      plan_->Compute(jobs, threads);
    } catch (const std::bad_alloc&) {
      Napi::Error::New(info.Env(), "not enough memory for the log-mel scratch buffers").ThrowAsJavaScriptException();
    }
    return info.Env().Undefined();
  }

  class Worker : public Napi::AsyncWorker {
   public:
    Worker(Napi::Env env, const MelPlan* plan, std::vector<MelPlan::Job> jobs, int threads, Napi::Object keepSamples, Napi::Object keepOut, Napi::Object keepPlan)
        : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), plan_(plan), jobs_(std::move(jobs)), threads_(threads) {
      samples_ = Napi::Persistent(keepSamples);
      out_ = Napi::Persistent(keepOut);
      self_ = Napi::Persistent(keepPlan);
    }
    Napi::Promise Promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        plan_->Compute(jobs_, threads_);
      } catch (const std::bad_alloc&) {
        SetError("not enough memory for the log-mel scratch buffers");
      }
    }
    void OnOK() override { deferred_.Resolve(Env().Undefined()); }
    void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

   private:
    Napi::Promise::Deferred deferred_;
    const MelPlan* plan_;
    std::vector<MelPlan::Job> jobs_;
    int threads_;
    Napi::ObjectReference samples_, out_, self_;
  };

  Napi::Value ComputeAsync(const Napi::CallbackInfo& info) {
    std::vector<MelPlan::Job> jobs;
    int threads = 1;
    if (!Jobs(info, &jobs, &threads)) return info.Env().Undefined();
    auto* w = new Worker(info.Env(), plan_.get(), std::move(jobs), threads, info[0].As<Napi::Object>(), info[4].As<Napi::Object>(), Value());
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  // The sparse filters as a dense [nMels, nFft/2+1] Float32Array (for tests and debugging).
  Napi::Value Filters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!plan_) return env.Null();
    (void)info;
    const int bins = plan_->nFft() / 2 + 1;
    Napi::Float32Array out = Napi::Float32Array::New(env, size_t(bins) * plan_->nMels());
    std::fill(out.Data(), out.Data() + out.ElementLength(), 0.0f);
    plan_->DenseFilters(out.Data());
    return out;
  }

  std::unique_ptr<MelPlan> plan_;
};

}  // namespace

}  // namespace audio

void RegisterAudioMel(Napi::Env env, Napi::Object exports) { exports.Set("MelPlan", audio::MelPlanWrap::Define(env)); }

}  // namespace wx
