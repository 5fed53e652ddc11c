// Polyphase windowed-sinc resampler. Each output sample is one dot product between a
// contiguous run of input samples and one precomputed phase of a Kaiser-windowed sinc, so the
// inner loop is a plain SIMD multiply-add over aligned-length rows.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <system_error>
#include <thread>

#include "audio_dsp.h"

namespace wx {
namespace audio {

void RunParallel(int threads, const std::function<void(int)>& fn) {
  if (threads <= 1) {
    fn(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  try {
    for (int t = 1; t < threads; t++) pool.emplace_back(fn, t);
  } catch (const std::system_error&) {
    // No more threads available: callers share work through a queue, so fewer workers only
    // makes it slower.
  }
  fn(0);
  for (auto& th : pool) th.join();
}

namespace {

constexpr int64_t kMaxPhases = 4096;
// Outputs per block: small enough that the block's input (≈ 23 KB at 44.1 kHz) stays in L1.
constexpr int64_t kBlockOutputs = 2048;
// Stop-band attenuation the filter is designed for, and the transition band as a fraction of
// the lower Nyquist frequency (the pass band ends at 90% of it, the stop band starts at 100%).
constexpr double kAttenuationDb = 80.0;
constexpr double kTransition = 0.10;

typedef float v16f __attribute__((vector_size(64)));

inline v16f Load16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

inline float HorizontalSum(v16f v) {
  v8f lo, hi;
  std::memcpy(&lo, &v, sizeof(lo));
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
  const v8f s8 = lo + hi;
  v4f l4, h4;
  std::memcpy(&l4, &s8, sizeof(l4));
  std::memcpy(&h4, reinterpret_cast<const char*>(&s8) + sizeof(l4), sizeof(h4));
  const v4f s4 = l4 + h4;
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

inline float Dot(const float* x, const float* h, int n) {
  v16f a0 = {}, a1 = {};
  int k = 0;
  for (; k + 32 <= n; k += 32) {
    a0 += Load16(x + k) * Load16(h + k);
    a1 += Load16(x + k + 16) * Load16(h + k + 16);
  }
  if (k < n) a0 += Load16(x + k) * Load16(h + k);
  return HorizontalSum(a0 + a1);
}

// Zeroth-order modified Bessel function of the first kind (power series; converges fast for
// the β values used here).
double BesselI0(double x) {
  double sum = 1, term = 1;
  const double q = x * x / 4;
  for (int k = 1; k < 64; k++) {
    term *= q / (double(k) * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

}  // namespace

Resampler::Resampler(int64_t from, int64_t to) : from_(from), to_(to) {
  if (from <= 0 || to <= 0 || from > 10'000'000 || to > 10'000'000) {
    throw AudioFailure{"unsupported", "sample rate out of range (" + std::to_string(from) + " Hz → " + std::to_string(to) + " Hz)"};
  }
  const int64_t g = std::gcd(from, to);
  up_ = to / g;
  down_ = from / g;
  const double nyquistLow = 0.5 * double(std::min(from, to));
  const double transition = kTransition * nyquistLow;
  const double cutoff = (nyquistLow - 0.5 * transition) / double(from);  // cycles per input sample
  const double beta = 0.1102 * (kAttenuationDb - 8.7);
  // Kaiser's length estimate, expressed as a half-width in input samples.
  const double halfWidth = (kAttenuationDb - 7.95) / (2.285 * 2 * M_PI * transition / double(from)) / 2;
  const int k = int(std::ceil(halfWidth));
  half_ = k - 1;
  taps_ = (2 * k + 15) / 16 * 16;
  exact_ = up_ <= kMaxPhases;
  phases_ = exact_ ? up_ : kMaxPhases + 1;
  table_.assign(size_t(phases_) * taps_, 0.0f);
  const double i0beta = BesselI0(beta);
  std::vector<double> row(taps_);
  for (int64_t p = 0; p < phases_; p++) {
    const double frac = exact_ ? double(p) / double(up_) : double(p) / double(kMaxPhases);
    double sum = 0;
    for (int j = 0; j < taps_; j++) {
      const double tau = frac + half_ - j;  // distance from the output instant, input samples
      double h = 0;
      if (std::fabs(tau) <= halfWidth) {
        const double arg = 2 * cutoff * tau;
        const double sinc = std::fabs(arg) < 1e-12 ? 1.0 : std::sin(M_PI * arg) / (M_PI * arg);
        const double r = tau / halfWidth;
        h = 2 * cutoff * sinc * BesselI0(beta * std::sqrt(std::max(0.0, 1 - r * r))) / i0beta;
      }
      row[j] = h;
      sum += h;
    }
    // Unit DC gain for every phase, so a constant signal stays exactly constant.
    for (int j = 0; j < taps_; j++) table_[size_t(p) * taps_ + j] = float(row[j] / sum);
  }
}

int64_t Resampler::OutputLength(int64_t n) const { return n <= 0 ? 0 : (n * up_ + down_ - 1) / down_; }

void Resampler::InputSpan(int64_t n0, int64_t n1, int64_t* a, int64_t* b) const {
  *a = n0 * down_ / up_ - half_;
  *b = (n1 - 1) * down_ / up_ - half_ + taps_;
}

void Resampler::Block(const float* xa, int64_t a, int64_t n0, int64_t n1, float* out) const {
  if (exact_ && up_ > 1) {
    // Phase-major order: outputs up_ apart share a phase, so each table row is loaded into L1
    // once per block instead of once per output (the table is up_ rows, 184 KB for 44.1 kHz).
    for (int64_t r = 0; r < std::min(up_, n1 - n0); r++) {
      const int64_t pos = (n0 + r) * down_;
      const int64_t i = pos / up_;
      const float* row = &table_[size_t(pos - i * up_) * taps_];
      const float* x = xa + (i - half_ - a);
      int64_t n = n0 + r;
      for (; n < n1; n += up_, x += down_) out[n - n0] = Dot(x, row, taps_);
    }
    return;
  }
  for (int64_t n = n0; n < n1; n++) {
    const int64_t pos = n * down_;
    const int64_t i = pos / up_;
    const int64_t phase = pos - i * up_;
    const float* x = xa + (i - half_ - a);
    if (exact_) {
      out[n - n0] = Dot(x, &table_[size_t(phase) * taps_], taps_);
    } else {
      const double where = double(phase) / double(up_) * double(kMaxPhases);
      const int64_t q = std::min<int64_t>(int64_t(where), kMaxPhases - 1);
      const float r = float(where - double(q));
      const float y0 = Dot(x, &table_[size_t(q) * taps_], taps_);
      const float y1 = Dot(x, &table_[size_t(q + 1) * taps_], taps_);
      out[n - n0] = y0 + r * (y1 - y0);
    }
  }
}

void Resampler::Run(int64_t nIn, const Filler& fill, float* out, int threads) const {
  const int64_t nOut = OutputLength(nIn);
  if (nOut == 0) return;
  const int64_t blocks = (nOut + kBlockOutputs - 1) / kBlockOutputs;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, blocks)));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  AudioFailure failure;
  RunParallel(threads, [&](int) {
    std::vector<float> buf;
    try {
      for (int64_t blk; !failed.load(std::memory_order_relaxed) && (blk = next.fetch_add(1)) < blocks;) {
        const int64_t n0 = blk * kBlockOutputs;
        const int64_t n1 = std::min(nOut, n0 + kBlockOutputs);
        int64_t a, b;
        InputSpan(n0, n1, &a, &b);
        buf.resize(size_t(b - a));
        fill(a, b, buf.data());
        Block(buf.data(), a, n0, n1, out + n0);
      }
    } catch (const AudioFailure& f) {
      if (!failed.exchange(true)) failure = f;
    } catch (const std::bad_alloc&) {
      if (!failed.exchange(true)) failure = AudioFailure{"too_large", "out of memory while resampling"};
    }
  });
  if (failed) throw failure;
}

}  // namespace audio
}  // namespace wx
