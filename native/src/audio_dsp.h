// Audio DSP shared by the WAV decoder, the resampler and the log-mel front-end.
// Pure C++ (no Node-API) so the hot paths can run on worker threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace wx {
namespace audio {

// A failure the TypeScript side turns into an AudioError: `code` is the stable suffix
// (`truncated`, `unsupported`, …), `message` the human reason without the file name.
struct AudioFailure {
  std::string code;
  std::string message;
};

// Runs fn(worker) on `threads` threads (the calling thread is worker 0) and joins them.
void RunParallel(int threads, const std::function<void(int)>& fn);

// Polyphase windowed-sinc (Kaiser) resampler for a fixed rational ratio to/from.
// The stop band starts exactly at the lower of the two Nyquist frequencies, so nothing above
// the new Nyquist aliases back (design attenuation 80 dB; the tests assert ≥ 60 dB).
class Resampler {
 public:
  Resampler(int64_t from, int64_t to);

  int64_t from() const { return from_; }
  int64_t to() const { return to_; }
  // Output length for `n` input samples: ceil(n · to / from).
  int64_t OutputLength(int64_t n) const;

  // Fills input samples [a, b) into dst (zeros outside the signal). Must be thread-safe.
  using Filler = std::function<void(int64_t a, int64_t b, float* dst)>;

  // Computes outputs [0, nOut) of a signal of `nIn` input samples read through `fill`.
  void Run(int64_t nIn, const Filler& fill, float* out, int threads) const;

  // Input index range [a, b) needed for outputs [n0, n1).
  void InputSpan(int64_t n0, int64_t n1, int64_t* a, int64_t* b) const;
  // Outputs [n0, n1) from input samples held at xa, where xa[0] is input sample `a` and the
  // buffer covers InputSpan(n0, n1).
  void Block(const float* xa, int64_t a, int64_t n0, int64_t n1, float* out) const;

 private:

  int64_t from_, to_, up_, down_;
  int taps_;        // taps per phase (a multiple of 16, zero-padded)
  int half_;        // taps before the output instant
  int64_t phases_;  // rows in table_
  bool exact_;      // one row per phase (up_ ≤ kMaxPhases), else interpolated between rows
  std::vector<float> table_;
};

// Whisper's log-mel spectrogram: STFT (periodic Hann, reflect padding, centred frames),
// power spectrum, Slaney mel filters, log10, floor at max−8, (x+4)/4.
class MelPlan {
 public:
  MelPlan(int nMels, int nFft, int hop, int sampleRate, double fMax);

  int nMels() const { return nMels_; }
  int nFft() const { return nFft_; }
  int hop() const { return hop_; }

  // One signal: `real` samples at x, logically zero-padded to `padded` samples (≥ real), then
  // reflect-padded by nFft/2 on both sides; frames = padded / hop (the last centred frame
  // dropped, as Whisper does). Writes [nMels, frames] row-major into out and normalises it.
  struct Job {
    const float* x;
    int64_t real;
    int64_t padded;
    float* out;
  };
  static int64_t Frames(int64_t padded, int hop) { return padded / hop; }
  void Compute(const std::vector<Job>& jobs, int threads) const;

  // The filters as a dense row-major [nMels, nFft/2 + 1] matrix.
  void DenseFilters(float* dst) const;

 private:
  struct FftStage {
    int radix, m, stride;
    size_t twiddle;  // offset into twRe_/twIm_: exp(-2πi·j·k/n), j < m, 1 ≤ k < radix
    size_t dft;      // offset of the radix×radix DFT matrix (radices without a kernel)
  };
  // Computes frames [f0, f0 + lanes) of one job into `out` (log10 of the mel energies).
  void Block(const Job& job, int64_t frames, int64_t f0, int lanes, float* scratch) const;
  size_t ScratchFloats() const;

  int nMels_, nFft_, hop_, half_;
  std::vector<float> window_;
  std::vector<FftStage> stages_;
  std::vector<float> twRe_, twIm_;      // per-stage twiddles
  std::vector<float> postRe_, postIm_;  // exp(-2πik/nFft), k = 0..nFft/2
  // Sparse mel filters: filter m covers bins [first_[m], first_[m] + count_[m]).
  std::vector<int> first_, count_;
  std::vector<size_t> offset_;
  std::vector<float> weights_;
};

}  // namespace audio
}  // namespace wx
