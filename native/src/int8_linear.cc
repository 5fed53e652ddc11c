// 8-bit linear layers for the INT8 encoder and decoder: y = x·Wᵀ + b with W in 8-bit blocks of 32
// inputs (one scale per output and block, the layout the importer writes for ONNX Runtime's
// MatMulNBits) and x quantised per row and block of 32 at run time, as MatMulNBits does at
// accuracy level 4. On this CPU MLAS runs those blocks at ~1.4× its float speed; int8 dot
// products (AVX-512 VNNI: 64 multiply-adds per instruction) allow ~4×, and the linears were half
// of the encoder. Also here: the decoder's self-attention over its cache and the weight-row
// lookup (token embeddings) that a native decoder step needs.
//
// Work per call: each thread takes a range of rows (or, for a few rows, a range of output
// panels), quantises them (optionally after a LayerNorm, so the normalised rows never exist in
// float), then walks the output columns in panels of 32 (the panel's weights stay in L1/L2 while
// every tile of rows passes over them). A tile's int32 block sums are scaled into float
// accumulators once per block of 32 inputs. Epilogues: plain, GELU, or added to the output (a
// residual stream).
#include <napi.h>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 warns inside its own AVX-512 headers (an undefined vector passed to an intrinsic).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include <cstdlib>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "modules.h"
#include "napi_args.h"
#include "pool.h"
#include "simd.h"

namespace wx {
namespace linear8 {
namespace {

using namespace simd;

constexpr int kBlock = 32;  // inputs per scale
constexpr int kPanel = 32;  // output columns per panel (two vectors of 16)
constexpr int kTileRows = 6;
constexpr int kPanelBlockBytes = kPanel * kBlock;  // int8 weights of one panel and one block

// Weights of one linear, packed for the kernel:
//   w     [panels][blocks][8 steps of 4 inputs][2 halves][16 outputs][4 inputs] unsigned bytes
//         w + 128 (as stored, zero point 128: the dot product's unsigned operand)
//   scale [panels][blocks][32] float
// The activations are the signed operand, so Σ (w + 128)·q = Σ w·q + 128·Σ q is corrected per
// row and block, from the activations' own sums: no per-weight correction table to stream.
// Tables in 2 MB pages where the kernel allows it (Linux's transparent huge pages, on request):
// with 4 KB pages a decoder step, which streams every table once out of cache, takes a TLB miss
// every 4 KB — dear in a virtual machine, where a miss walks two page tables. Measured: the
// 51,864-row projection 8–18% faster at 1–4 rows; with the decoder layers' 24 small tables
// (147–590 KB) packed together into huge-page arenas as well, a whole step ~4% faster at 1 row,
// 1–2% at 8 (two models alternating step by step in one process, both orders).
constexpr size_t kHugePage = size_t(2) << 20;

void* AllocateHuge(size_t bytes) {
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = nullptr;
  if (posix_memalign(&p, kHugePage, rounded) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

// Tables smaller than a huge page, bump-allocated from shared 2 MB-aligned chunks (a chunk is
// freed when the last table in it is): one model's small tables then share a few huge pages.
class TableArena {
 public:
  void* Allocate(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    std::lock_guard<std::mutex> lock(mu_);
    if (chunks_.empty() || chunks_.back().used + bytes > kChunk) chunks_.push_back(Chunk{static_cast<char*>(AllocateHuge(kChunk)), 0, 0});
    Chunk& c = chunks_.back();
    void* p = c.base + c.used;
    c.used += bytes;
    c.live++;
    return p;
  }
  void Free(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < chunks_.size(); i++) {
      Chunk& c = chunks_[i];
      if (static_cast<char*>(p) < c.base || static_cast<char*>(p) >= c.base + kChunk) continue;
      if (--c.live == 0) {
        std::free(c.base);
        chunks_.erase(chunks_.begin() + long(i));
      }
      return;
    }
  }

 private:
  static constexpr size_t kChunk = 4 * kHugePage;
  struct Chunk {
    char* base;
    size_t used;
    int live;
  };
  std::mutex mu_;
  std::vector<Chunk> chunks_;
};

TableArena& SmallTables() {
  static TableArena* arena = new TableArena();  // never destroyed: tables may outlive static destruction
  return *arena;
}

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  // Below a few KB (biases, a small model's scales) a table is not worth a place in the arena.
  static constexpr size_t kArenaFrom = 4096;
  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kHugePage) return static_cast<T*>(AllocateHuge(bytes));
    if (bytes >= kArenaFrom) return static_cast<T*>(SmallTables().Allocate(bytes));
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kArenaFrom && bytes < kHugePage) SmallTables().Free(p);
    else std::free(p);
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

struct Packed {
  int n = 0, k = 0, blocks = 0, panels = 0;
  std::vector<uint8_t, HugePageAllocator<uint8_t>> w;
  std::vector<float, HugePageAllocator<float>> scale;
  std::vector<float> bias;  // [panels·32], zero-padded
};

// Offset of output c (0..31) of a panel, input i (0..31) of a block, in the panel-block's 1 KB.
inline int InBlock(int c, int i) { return (i / 4) * 128 + (c / 16) * 64 + (c % 16) * 4 + i % 4; }

// A thread's rows quantised: int8 [rows][blocks·32], and per row and block the scale and 128·Σ q.
struct Quantised {
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> sum;
};

// One row (length k) into blocks of 32: scale = max|x| / 127, q = round(x / scale).
void QuantiseRow(const float* x, int k, int blocks, int8_t* q, float* scales, int32_t* sums) {
  int b0 = 0;
#if defined(__AVX512F__)
  // Whole blocks in two vectors each: the same arithmetic as below (round to nearest even, as
  // nearbyint in the default rounding mode). It runs on every linear's input: the scalar loop
  // was ~13% of fc2's time.
  for (; b0 < k / kBlock; b0++) {
    const float* xb = x + b0 * kBlock;
    const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
    const float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    scales[b0] = m / 127.0f;
    const __m512 inv = _mm512_set1_ps(m > 0 ? 127.0f / m : 0.0f);
    const auto quantise = [&](__m512 v) {
      const __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(v, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      return _mm512_cvtps_epi32(_mm512_max_ps(_mm512_set1_ps(-127.0f), _mm512_min_ps(_mm512_set1_ps(127.0f), r)));
    };
    const __m512i q0 = quantise(x0), q1 = quantise(x1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b0 * kBlock), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b0 * kBlock + 16), _mm512_cvtepi32_epi8(q1));
    sums[b0] = 128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
#endif
  for (int b = b0; b < blocks; b++) {
    const int from = b * kBlock, to = std::min(k, from + kBlock);
    float m = 0;
    for (int i = from; i < to; i++) m = std::max(m, std::fabs(x[i]));
    const float scale = m / 127.0f;
    const float inv = m > 0 ? 127.0f / m : 0.0f;
    scales[b] = scale;
    int8_t* out = q + from;
    int32_t sum = 0;
    int i = from;
    for (; i < to; i++) {
      const int v = int(std::max(-127.0f, std::min(127.0f, std::nearbyint(x[i] * inv))));
      out[i - from] = int8_t(v);
      sum += v;
    }
    for (; i < from + kBlock; i++) out[i - from] = 0;
    sums[b] = 128 * sum;
  }
}

// LayerNorm of one row into `out` (biased variance, two passes), as ONNX LayerNormalization.
void NormRow(const float* x, int d, const float* gamma, const float* beta, float eps, float* out) {
  double sum = 0;
  double sq = 0;
  int i0 = 0;
#if defined(__AVX512F__)
  // Both sums in lanes of doubles (one chain of dependent adds per row was most of the cost):
  // another order of exact-or-nearly-exact double additions of floats, so mean and variance
  // round to the same floats.
  const int whole = d / 16 * 16;
  if (whole > 0) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < whole; i += 16) {
      s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
      s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)));
    }
    for (int i = whole; i < d; i++) sum += x[i];
    sum += _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    const __m512 m = _mm512_set1_ps(float(sum / d));
    __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
    for (int i = 0; i < whole; i += 16) {
      const __m512 c = _mm512_sub_ps(_mm512_loadu_ps(x + i), m);
      const __m512d c0 = _mm512_cvtps_pd(_mm512_castps512_ps256(c));
      const __m512d c1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(c), 1)));
      q0 = _mm512_fmadd_pd(c0, c0, q0);
      q1 = _mm512_fmadd_pd(c1, c1, q1);
    }
    sq = _mm512_reduce_add_pd(_mm512_add_pd(q0, q1));
    i0 = whole;
  }
#endif
  if (i0 == 0)
    for (int i = 0; i < d; i++) sum += x[i];
  const float mean = float(sum / d);
  for (int i = i0; i < d; i++) {
    const float c = x[i] - mean;
    sq += double(c) * c;
  }
  const float inv = 1.0f / std::sqrt(float(sq / d) + eps);
  for (int i = 0; i < d; i++) out[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), lane-wise.
inline vf Erf(vf x) {
  const vi neg = x < Splat(0.0f);
  const vf a = Select(neg, -x, x);
  const vf t = Splat(1.0f) / (Splat(1.0f) + Splat(0.3275911f) * a);
  vf p = Splat(1.061405429f);
  p = p * t + Splat(-1.453152027f);
  p = p * t + Splat(1.421413741f);
  p = p * t + Splat(-0.284496736f);
  p = p * t + Splat(0.254829592f);
  const vf y = Splat(1.0f) - p * t * ExpNonPositive(-(a * a));
  return Select(neg, -y, y);
}

inline vf Gelu(vf x) { return Splat(0.5f) * x * (Splat(1.0f) + Erf(x * Splat(0.70710678118654752f))); }

// kGeluAdd: GELU of the result, then added to what `out` holds (the conv stem: GELU, then the
// positions the caller wrote there).
enum Epilogue { kSet = 0, kGelu = 1, kAdd = 2, kGeluAdd = 3 };

inline bool Gelus(Epilogue e) { return e == kGelu || e == kGeluAdd; }
inline bool Adds(Epilogue e) { return e == kAdd || e == kGeluAdd; }

// Where outputs go: row-major [rows, n], or split into heads per window ([windows, heads,
// positions, headDim] for rows = windows·positions; a panel then lies inside one head).
struct Layout {
  int heads = 0, positions = 0, headDim = 0;

  size_t RowBase(int r, int n) const {
    if (!heads) return size_t(r) * n;
    const int b = r / positions, t = r % positions;
    return (size_t(b) * heads * positions + t) * headDim;
  }
  size_t ColBase(int col) const {
    if (!heads) return size_t(col);
    return size_t(col / headDim) * positions * headDim + col % headDim;
  }
};

// Rows already quantised as a linear quantises its input (blocks of 32): one linear's output
// made ready for the next one's input (fc1 → fc2), so the float rows are never stored and read
// back, nor quantised in a second pass.
struct QuantisedRows {
  int rows = 0, k = 0, blocks = 0;
  Quantised data;
};

// acc [rows][32] (float dot products) of rows first.. → out columns [col, col + 32) ∩ [0, n), or
// with `outQ` into block `panel` of those rows there (kPanel = kBlock: a panel is one block of
// the next linear's input, quantised by the same QuantiseRow it would run).
void Finish(const float* acc, int first, int rows, const Packed& p, int panel, Epilogue e, const Layout& layout, float* out, QuantisedRows* outQ = nullptr) {
  const int col = panel * kPanel;
  const int width = std::min(kPanel, p.n - col);
  const float* bias = p.bias.data() + col;
  if (outQ) {
    static_assert(kPanel == kBlock, "a panel of outputs is a block of the next input");
    const int kp = outQ->blocks * kBlock;
    for (int r = 0; r < rows; r++) {
      alignas(64) float v[kPanel];
      for (int j = 0; j < kPanel; j += W) {
        vf y = Load(acc + r * kPanel + j) + Load(bias + j);
        if (e == kGelu) y = Gelu(y);
        Store(v + j, y);
      }
      const size_t row = size_t(first + r);
      QuantiseRow(v, kBlock, 1, outQ->data.q.data() + row * kp + size_t(panel) * kBlock, outQ->data.scale.data() + row * outQ->blocks + panel,
                  outQ->data.sum.data() + row * outQ->blocks + panel);
    }
    return;
  }
  const size_t colBase = layout.ColBase(col);
  for (int r = 0; r < rows; r++) {
    const float* a = acc + r * kPanel;
    float* o = out + layout.RowBase(first + r, p.n) + colBase;
    if (width == kPanel) {
      for (int j = 0; j < kPanel; j += W) {
        vf v = Load(a + j) + Load(bias + j);
        if (Gelus(e)) v = Gelu(v);
        if (Adds(e)) v += Load(o + j);
        Store(o + j, v);
      }
    } else {
      float tmp[kPanel];
      for (int j = 0; j < kPanel; j += W) {
        vf v = Load(a + j) + Load(bias + j);
        if (Gelus(e)) v = Gelu(v);
        Store(tmp + j, v);
      }
      for (int j = 0; j < width; j++) o[j] = Adds(e) ? o[j] + tmp[j] : tmp[j];
    }
  }
}

#if WX_VNNI
template <int R>
void Tile(const int8_t* q, const float* qs, const int32_t* qsum, int kp, const Packed& p, int panel, float* acc) {
  const int blocks = p.blocks;
  __m512 fa[R][2];
  for (int r = 0; r < R; r++) fa[r][0] = fa[r][1] = _mm512_setzero_ps();
  const uint8_t* w = p.w.data() + size_t(panel) * blocks * kPanelBlockBytes;
  const float* ws = p.scale.data() + size_t(panel) * blocks * kPanel;
  for (int b = 0; b < blocks; b++) {
    __m512i ia[R][2];
    for (int r = 0; r < R; r++) ia[r][0] = ia[r][1] = _mm512_setzero_si512();
    const uint8_t* wb = w + size_t(b) * kPanelBlockBytes;
    for (int s = 0; s < kBlock / 4; s++) {
      const __m512i w0 = _mm512_loadu_si512(wb + s * 128);
      const __m512i w1 = _mm512_loadu_si512(wb + s * 128 + 64);
      for (int r = 0; r < R; r++) {
        int32_t four;
        std::memcpy(&four, q + size_t(r) * kp + b * kBlock + s * 4, 4);
        const __m512i av = _mm512_set1_epi32(four);
        ia[r][0] = _mm512_dpbusd_epi32(ia[r][0], w0, av);
        ia[r][1] = _mm512_dpbusd_epi32(ia[r][1], w1, av);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(ws + b * kPanel), s1 = _mm512_loadu_ps(ws + b * kPanel + 16);
    for (int r = 0; r < R; r++) {
      const __m512 sr = _mm512_set1_ps(qs[size_t(r) * blocks + b]);
      const __m512i cr = _mm512_set1_epi32(qsum[size_t(r) * blocks + b]);
      fa[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ia[r][0], cr)), _mm512_mul_ps(s0, sr), fa[r][0]);
      fa[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ia[r][1], cr)), _mm512_mul_ps(s1, sr), fa[r][1]);
    }
  }
  for (int r = 0; r < R; r++) {
    _mm512_storeu_ps(acc + r * kPanel, fa[r][0]);
    _mm512_storeu_ps(acc + r * kPanel + 16, fa[r][1]);
  }
}
#else
// Portable path over the same layout (correct, not fast: callers check `linear8Fast`).
template <int R>
void Tile(const int8_t* q, const float* qs, const int32_t* qsum, int kp, const Packed& p, int panel, float* acc) {
  const int blocks = p.blocks;
  for (int i = 0; i < R * kPanel; i++) acc[i] = 0;
  const uint8_t* w = p.w.data() + size_t(panel) * blocks * kPanelBlockBytes;
  const float* ws = p.scale.data() + size_t(panel) * blocks * kPanel;
  for (int b = 0; b < blocks; b++) {
    const uint8_t* wb = w + size_t(b) * kPanelBlockBytes;
    for (int r = 0; r < R; r++) {
      const int8_t* a = q + size_t(r) * kp + b * kBlock;
      for (int c = 0; c < kPanel; c++) {
        int32_t dot = 0;
        for (int i = 0; i < kBlock; i++) dot += int32_t(a[i]) * wb[InBlock(c, i)];
        acc[r * kPanel + c] += float(dot - qsum[size_t(r) * blocks + b]) * (ws[b * kPanel + c] * qs[size_t(r) * blocks + b]);
      }
    }
  }
}
#endif

void RunTile(int rows, const int8_t* q, const float* qs, const int32_t* qsum, int kp, const Packed& p, int panel, float* acc) {
  switch (rows) {
    case 6: Tile<6>(q, qs, qsum, kp, p, panel, acc); break;
    case 5: Tile<5>(q, qs, qsum, kp, p, panel, acc); break;
    case 4: Tile<4>(q, qs, qsum, kp, p, panel, acc); break;
    case 3: Tile<3>(q, qs, qsum, kp, p, panel, acc); break;
    case 2: Tile<2>(q, qs, qsum, kp, p, panel, acc); break;
    default: Tile<1>(q, qs, qsum, kp, p, panel, acc); break;
  }
}

struct Norm {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float eps = 0;
};

// The input rows of a 3-tap convolution with padding 1 (Whisper's conv stem), read where the
// input lies instead of copied out first: output frame j of window b sees input frames
// j·stride − 1 … j·stride + 1, tap-major (k = 3·channels; the weights are [out, tap, channel]).
// Frame-major input ([windows, frames, channels]: the first conv's output) gives each inner row
// in place; channel-major input ([windows, channels, frames]: a mel window) is gathered.
struct ConvRows {
  const float* x = nullptr;
  int frames = 0, channels = 0, stride = 1, outFrames = 0;
  bool channelMajor = false;

  // Row r, in place or assembled in `tmp` (3·channels floats) with zeros outside the window.
  const float* Row(int r, float* tmp) const {
    const int b = r / outFrames, t0 = (r % outFrames) * stride - 1;
    const float* window = x + size_t(b) * frames * channels;
    if (!channelMajor && t0 >= 0 && t0 + 3 <= frames) return window + size_t(t0) * channels;
    for (int tap = 0; tap < 3; tap++) {
      const int t = t0 + tap;
      float* dst = tmp + size_t(tap) * channels;
      if (t < 0 || t >= frames) {
        std::fill(dst, dst + channels, 0.0f);
      } else if (channelMajor) {
        for (int c = 0; c < channels; c++) dst[c] = window[size_t(c) * frames + t];
      } else {
        std::memcpy(dst, window + size_t(t) * channels, size_t(channels) * sizeof(float));
      }
    }
    return tmp;
  }
};

// `xq` (instead of `x`): rows already quantised; `outQ` (instead of `out`): see Finish; `conv`
// (instead of `x`): the rows of a convolution, see ConvRows.
void Compute(const Packed& p, const float* x, int rows, const Norm& norm, Epilogue e, const Layout& layout, float* out, int threads,
             const QuantisedRows* xq = nullptr, QuantisedRows* outQ = nullptr, const ConvRows* conv = nullptr) {
  const int kp = p.blocks * kBlock;
  const int tiles = (rows + kTileRows - 1) / kTileRows;
  // Many rows (an encoder window): threads take ranges of rows. Few rows (a decoder step): they
  // take ranges of output panels instead, each quantising the few rows itself.
  const bool byPanel = tiles < 4 * threads;
  const int64_t work = int64_t(rows) * p.n * p.k;
  // Both threads from 64 k multiply-adds (a 384 × 384 table at one row is 147 k): a decoder step
  // reads every table from memory, which two threads do faster, and the helper is still spinning
  // from the call before (from 256 k, as it was, a batch-1 step was ~6% slower).
  const int parts = work < (1 << 16) ? 1 : std::max(1, std::min(threads, byPanel ? p.panels : tiles));
  auto run = [&](int part, int nparts) {
    int first = 0, last = rows, panel0 = 0, panel1 = p.panels;
    if (byPanel) {
      panel0 = int(int64_t(p.panels) * part / nparts);
      panel1 = int(int64_t(p.panels) * (part + 1) / nparts);
    } else {
      first = int(int64_t(tiles) * part / nparts) * kTileRows;
      last = std::min(rows, int(int64_t(tiles) * (part + 1) / nparts) * kTileRows);
    }
    if (first >= last || panel0 >= panel1) return;
    thread_local Quantised buf;
    thread_local std::vector<float> normed, convRow;
    const int n = last - first;
    const int8_t* q;
    const float* qs;
    const int32_t* qsum;
    if (xq) {
      q = xq->data.q.data() + size_t(first) * kp;
      qs = xq->data.scale.data() + size_t(first) * p.blocks;
      qsum = xq->data.sum.data() + size_t(first) * p.blocks;
    } else {
      buf.q.resize(size_t(n) * kp);
      buf.scale.resize(size_t(n) * p.blocks);
      buf.sum.resize(size_t(n) * p.blocks);
      if (norm.gamma) normed.resize(p.k);
      if (conv) convRow.resize(p.k);
      for (int r = 0; r < n; r++) {
        const float* row = conv ? conv->Row(first + r, convRow.data()) : x + size_t(first + r) * p.k;
        if (norm.gamma) {
          NormRow(row, p.k, norm.gamma, norm.beta, norm.eps, normed.data());
          row = normed.data();
        }
        QuantiseRow(row, p.k, p.blocks, buf.q.data() + size_t(r) * kp, buf.scale.data() + size_t(r) * p.blocks, buf.sum.data() + size_t(r) * p.blocks);
      }
      q = buf.q.data();
      qs = buf.scale.data();
      qsum = buf.sum.data();
    }
    float acc[kTileRows * kPanel];
    for (int panel = panel0; panel < panel1; panel++) {
      for (int r = 0; r < n; r += kTileRows) {
        const int tr = std::min(kTileRows, n - r);
        RunTile(tr, q + size_t(r) * kp, qs + size_t(r) * p.blocks, qsum + size_t(r) * p.blocks, kp, p, panel, acc);
        Finish(acc, first + r, tr, p, panel, e, layout, out, outQ);
      }
    }
  };
  SharedPool().Run(parts, run);
}

// Rows of the weight matrix, dequantised (the token embedding shares the output projection's table).
void WeightRows(const Packed& p, const int32_t* ids, int count, float* out) {
  for (int r = 0; r < count; r++) {
    const int o = ids[r], panel = o / kPanel, c = o % kPanel;
    float* dst = out + size_t(r) * p.k;
    for (int b = 0; b < p.blocks; b++) {
      const uint8_t* wb = p.w.data() + (size_t(panel) * p.blocks + b) * kPanelBlockBytes;
      const float scale = p.scale[(size_t(panel) * p.blocks + b) * kPanel + c];
      for (int i = 0; i < kBlock && b * kBlock + i < p.k; i++) dst[b * kBlock + i] = float(int(wb[InBlock(c, i)]) - 128) * scale;
    }
  }
}

// The decoder's self-attention over its cache, per row: the step's new keys/values (from the
// fused q/k/v rows, queries pre-scaled) are first written into the row's cache at its next
// positions, then each new token attends to everything up to itself. Cache layout per layer:
// [slots, heads, capacity, headDim].
struct SelfAttention {
  const float* qkv;  // [rows·steps, 3·heads·headDim]
  float* keys;
  float* values;
  const int32_t* slots;
  const int32_t* lengths;  // cached positions per row before this step
  int rows, steps, heads, headDim, capacity;
  float* out;  // [rows·steps, heads·headDim]
};

// o = Σ_t (p[t]·inv)·V[t] over `visible` value rows of `dh` floats. With NV whole vectors per row
// (heads of 64 or 128 dims) the sums stay in registers: through memory, every position's
// store-then-load of the same four vectors made a chain of store-forwarding waits. The same
// multiply-adds in the same order either way.
template <int NV>
void WeighValues(const float* p, float inv, const float* V, int visible, float* o, int dh = NV * W) {
  if constexpr (NV > 0) {
    vf acc[NV];
    for (int j = 0; j < NV; j++) acc[j] = Splat(0.0f);
    for (int t = 0; t < visible; t++) {
      const vf pt = Splat(p[t] * inv);
      const float* v = V + size_t(t) * dh;
      for (int j = 0; j < NV; j++) acc[j] = acc[j] + pt * Load(v + j * W);
    }
    for (int j = 0; j < NV; j++) Store(o + j * W, acc[j]);
  } else {
    for (int i = 0; i < dh; i++) o[i] = 0;
    for (int t = 0; t < visible; t++) {
      const float pt = p[t] * inv;
      const float* v = V + size_t(t) * dh;
      int i = 0;
      for (; i + W <= dh; i += W) Store(o + i, Load(o + i) + Splat(pt) * Load(v + i));
      for (; i < dh; i++) o[i] += pt * v[i];
    }
  }
}

void AttendSelf(const SelfAttention& a, int row, int head, std::vector<float>& scores) {
  const int d = a.heads * a.headDim, dh = a.headDim;
  const size_t base = (size_t(a.slots[row]) * a.heads + head) * a.capacity * dh;
  float* K = a.keys + base;
  float* V = a.values + base;
  const int len = a.lengths[row];
  for (int s = 0; s < a.steps; s++) {
    const float* src = a.qkv + size_t(row * a.steps + s) * 3 * d + head * dh;
    std::memcpy(K + size_t(len + s) * dh, src + d, dh * sizeof(float));
    std::memcpy(V + size_t(len + s) * dh, src + 2 * d, dh * sizeof(float));
  }
  scores.resize(size_t(len + a.steps + W));
  for (int s = 0; s < a.steps; s++) {
    const float* q = a.qkv + size_t(row * a.steps + s) * 3 * d + head * dh;
    const int visible = len + s + 1;
    float m = -INFINITY;
    for (int t = 0; t < visible; t++) {
      const float* k = K + size_t(t) * dh;
      vf acc = Splat(0.0f);
      int i = 0;
      for (; i + W <= dh; i += W) acc += Load(q + i) * Load(k + i);
      float sc = SumLanes(acc);
      for (; i < dh; i++) sc += q[i] * k[i];
      scores[t] = sc;
      m = std::max(m, sc);
    }
    // e^(score − max) in whole vectors; the lanes past `visible` are zeroed.
    vf vsum = Splat(0.0f);
    for (int t = 0; t < visible; t += W) {
      vf e = ExpNonPositive(Load(&scores[t]) - Splat(m));
      if (t + W > visible) {
        vi lane;
        for (int l = 0; l < W; l++) lane[l] = t + l < visible ? -1 : 0;
        e = Select(lane, e, Splat(0.0f));
      }
      Store(&scores[t], e);
      vsum += e;
    }
    const float inv = 1.0f / SumLanes(vsum);
    float* o = a.out + size_t(row * a.steps + s) * d + head * dh;
    switch (dh) {
      case 4 * W: WeighValues<4>(scores.data(), inv, V, visible, o); break;
      case 8 * W: WeighValues<8>(scores.data(), inv, V, visible, o); break;
      default: WeighValues<0>(scores.data(), inv, V, visible, o, dh); break;
    }
  }
}

// linear8Pack(values: Uint8Array [n, blocks, 32] (zero point 128), scales: Float32Array
//             [n·blocks], bias: Float32Array [n] | null, n, k) → packed weights (opaque)
Napi::Value JsPack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !IsArray(info[0], napi_uint8_array) || !IsArray(info[1], napi_float32_array) ||
      !(info[2].IsNull() || info[2].IsUndefined() || IsArray(info[2], napi_float32_array)) || !info[3].IsNumber() || !info[4].IsNumber()) {
    Napi::TypeError::New(env, "linear8Pack(values: Uint8Array, scales: Float32Array, bias: Float32Array | null, n, k)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto p = std::make_unique<Packed>();
  p->n = Int(info[3]);
  p->k = Int(info[4]);
  p->blocks = (p->k + kBlock - 1) / kBlock;
  p->panels = (p->n + kPanel - 1) / kPanel;
  Napi::Uint8Array values = info[0].As<Napi::Uint8Array>();
  Napi::Float32Array scales = info[1].As<Napi::Float32Array>();
  const bool hasBias = IsArray(info[2], napi_float32_array);
  if (p->n <= 0 || p->k <= 0 || values.ElementLength() != size_t(p->n) * p->blocks * kBlock || scales.ElementLength() != size_t(p->n) * p->blocks ||
      (hasBias && info[2].As<Napi::Float32Array>().ElementLength() != size_t(p->n))) {
    Napi::RangeError::New(env, "linear8Pack: sizes do not match n = " + std::to_string(p->n) + ", k = " + std::to_string(p->k)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t cells = size_t(p->panels) * p->blocks * kPanel;
  p->w.assign(cells * kBlock, 128);  // padded outputs: zero weights
  p->scale.assign(cells, 0.0f);
  p->bias.assign(size_t(p->panels) * kPanel, 0.0f);
  const uint8_t* v = values.Data();
  const float* s = scales.Data();
  const float* bias = hasBias ? info[2].As<Napi::Float32Array>().Data() : nullptr;
  for (int o = 0; o < p->n; o++) {
    const int panel = o / kPanel, c = o % kPanel;
    for (int b = 0; b < p->blocks; b++) {
      const size_t cell = (size_t(panel) * p->blocks + b) * kPanel + c;
      uint8_t* wb = p->w.data() + (size_t(panel) * p->blocks + b) * kPanelBlockBytes;
      for (int i = 0; i < kBlock; i++) wb[InBlock(c, i)] = v[(size_t(o) * p->blocks + b) * kBlock + i];
      p->scale[cell] = s[size_t(o) * p->blocks + b];
    }
    if (bias) p->bias[o] = bias[o];
  }
  const size_t bytes = p->w.size() + (p->scale.size() + p->bias.size()) * 4;
  Packed* raw = p.release();
  Napi::External<Packed> ext = Napi::External<Packed>::New(env, raw, [bytes](Napi::Env e, Packed* d) {
    delete d;
    Napi::MemoryManagement::AdjustExternalMemory(e, -int64_t(bytes));
  });
  Napi::MemoryManagement::AdjustExternalMemory(env, int64_t(bytes));
  return ext;
}

// Tells a QuantisedRows handle from a packed linear's (both are externals).
const napi_type_tag kQuantisedRowsTag = {0x77785f7175616e74ULL, 0x697365645f726f77ULL};

QuantisedRows* AsQuantisedRows(const Napi::Value& v) {
  if (!v.IsExternal() || !v.As<Napi::External<QuantisedRows>>().CheckTypeTag(&kQuantisedRowsTag)) return nullptr;
  return v.As<Napi::External<QuantisedRows>>().Data();
}

// linear8QuantisedRows(rows, k) → room for `rows` rows of width `k` quantised as a linear's
// input (opaque): one linear's output for the next one's input, see linear8Run.
Napi::Value JsQuantisedRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int rows = info.Length() > 1 && info[0].IsNumber() ? Int(info[0]) : -1, k = info.Length() > 1 && info[1].IsNumber() ? Int(info[1]) : -1;
  if (rows < 1 || k < 1 || k % kBlock != 0) {
    Napi::RangeError::New(env, "linear8QuantisedRows(rows ≥ 1, k: a multiple of 32)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto q = std::make_unique<QuantisedRows>();
  q->rows = rows;
  q->k = k;
  q->blocks = k / kBlock;
  q->data.q.assign(size_t(rows) * k, 0);
  q->data.scale.assign(size_t(rows) * q->blocks, 0.0f);
  q->data.sum.assign(size_t(rows) * q->blocks, 0);
  auto ext = Napi::External<QuantisedRows>::New(env, q.release(), [](Napi::Env, QuantisedRows* d) { delete d; });
  ext.TypeTag(&kQuantisedRowsTag);
  return ext;
}

// `norm` argument ({ gamma, beta: Float32Array [k], eps }) into `out`; false (and a thrown
// RangeError naming `fn`) if it does not fit rows of width k.
bool ReadNorm(Napi::Env env, const Napi::Value& v, int k, const char* fn, Norm& out) {
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value g = o.Get("gamma"), b = o.Get("beta");
  if (!IsArray(g, napi_float32_array) || !IsArray(b, napi_float32_array) || g.As<Napi::Float32Array>().ElementLength() != size_t(k) ||
      b.As<Napi::Float32Array>().ElementLength() != size_t(k) || !o.Get("eps").IsNumber()) {
    Napi::RangeError::New(env, std::string(fn) + ": norm needs gamma and beta of the input width and eps").ThrowAsJavaScriptException();
    return false;
  }
  out.gamma = g.As<Napi::Float32Array>().Data();
  out.beta = b.As<Napi::Float32Array>().Data();
  out.eps = o.Get("eps").As<Napi::Number>().FloatValue();
  return true;
}

// linear8Quantise(x: Float32Array [rows, k], rows, out: QuantisedRows, threads, norm?) — rows
// (after a LayerNorm when `norm`) quantised as a linear quantises its input, for several linears
// that read the same rows (the encoder's output, into 8 cross key/value projections).
Napi::Value JsQuantise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  QuantisedRows* outQ = info.Length() > 2 ? AsQuantisedRows(info[2]) : nullptr;
  if (info.Length() < 4 || !IsArray(info[0], napi_float32_array) || !info[1].IsNumber() || !outQ || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "linear8Quantise(x: Float32Array, rows, out: QuantisedRows, threads, norm?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int rows = Int(info[1]), k = outQ->k;
  Napi::Float32Array x = info[0].As<Napi::Float32Array>();
  if (rows < 0 || rows > outQ->rows || x.ElementLength() < size_t(rows) * k) {
    Napi::RangeError::New(env, "linear8Quantise: sizes do not match").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Norm norm;
  if (info.Length() > 4 && info[4].IsObject() && !ReadNorm(env, info[4], k, "linear8Quantise", norm)) return env.Undefined();
  const float* src = x.Data();
  const int blocks = outQ->blocks;
  const int parts = int64_t(rows) * k < (1 << 16) ? 1 : std::max(1, std::min(Int(info[3]), rows));
  SharedPool().Run(parts, [&](int part, int nparts) {
    thread_local std::vector<float> normed;
    if (norm.gamma) normed.resize(k);
    for (int r = int(int64_t(rows) * part / nparts); r < int(int64_t(rows) * (part + 1) / nparts); r++) {
      const float* row = src + size_t(r) * k;
      if (norm.gamma) {
        NormRow(row, k, norm.gamma, norm.beta, norm.eps, normed.data());
        row = normed.data();
      }
      QuantiseRow(row, k, blocks, outQ->data.q.data() + size_t(r) * k, outQ->data.scale.data() + size_t(r) * blocks, outQ->data.sum.data() + size_t(r) * blocks);
    }
  });
  return env.Undefined();
}

// linear8Run(packed, x: Float32Array [rows, k] | QuantisedRows, rows, out: Float32Array [rows, n] | QuantisedRows,
//            epilogue: 0 out = y | 1 out = gelu(y) | 2 out += y | 3 out += gelu(y), threads,
//            norm?: { gamma: Float32Array [k], beta: Float32Array [k], eps } | null,
//            heads?: { heads, positions }) — y = LN?(x)·Wᵀ + b; with `heads`, out is
//            [rows / positions, heads, positions, n / heads]. QuantisedRows (linear8QuantisedRows)
//            in place of x: its rows as they are (no norm); in place of out: y quantised as the
//            next linear's input (set or GELU).
Napi::Value JsRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  QuantisedRows* xq = info.Length() > 1 ? AsQuantisedRows(info[1]) : nullptr;
  QuantisedRows* outQ = info.Length() > 3 ? AsQuantisedRows(info[3]) : nullptr;
  if (info.Length() < 6 || !info[0].IsExternal() || !(xq || IsArray(info[1], napi_float32_array)) || !info[2].IsNumber() ||
      !(outQ || IsArray(info[3], napi_float32_array)) || !info[4].IsNumber() || !info[5].IsNumber()) {
    Napi::TypeError::New(env, "linear8Run(packed, x: Float32Array | QuantisedRows, rows, out: Float32Array | QuantisedRows, epilogue: 0 | 1 | 2, threads, norm?)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const Packed& p = *info[0].As<Napi::External<Packed>>().Data();
  const int rows = Int(info[2]);
  const int epilogue = Int(info[4]);
  const bool xFits = xq ? xq->k == p.k && xq->rows >= rows : info[1].As<Napi::Float32Array>().ElementLength() >= size_t(rows) * p.k;
  const bool outFits = outQ ? outQ->k == p.n && outQ->rows >= rows && epilogue != kAdd && epilogue != kGeluAdd : info[3].As<Napi::Float32Array>().ElementLength() >= size_t(rows) * p.n;
  if (rows < 0 || !xFits || !outFits || epilogue < 0 || epilogue > 3) {
    Napi::RangeError::New(env, "linear8Run: sizes do not match").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if ((xq && info.Length() > 6 && info[6].IsObject()) || (outQ && info.Length() > 7 && info[7].IsObject())) {
    Napi::RangeError::New(env, "linear8Run: quantised rows take no norm (input) or heads (output)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Norm norm;
  if (info.Length() > 6 && info[6].IsObject() && !ReadNorm(env, info[6], p.k, "linear8Run", norm)) return env.Undefined();
  Layout layout;
  if (info.Length() > 7 && info[7].IsObject()) {
    Napi::Object o = info[7].As<Napi::Object>();
    layout.heads = o.Get("heads").IsNumber() ? Int(o.Get("heads")) : 0;
    layout.positions = o.Get("positions").IsNumber() ? Int(o.Get("positions")) : 0;
    layout.headDim = layout.heads > 0 ? p.n / layout.heads : 0;
    if (layout.heads <= 0 || layout.positions <= 0 || p.n % layout.heads != 0 || layout.headDim % kPanel != 0 || rows % layout.positions != 0) {
      Napi::RangeError::New(env, "linear8Run: heads must divide the outputs into heads of a multiple of 32, positions the rows").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  Compute(p, xq ? nullptr : info[1].As<Napi::Float32Array>().Data(), rows, norm, Epilogue(epilogue), layout, outQ ? nullptr : info[3].As<Napi::Float32Array>().Data(),
          Int(info[5]), xq, outQ);
  return env.Undefined();
}

// conv8Run(packed, x: Float32Array, windows, frames, channels, stride, channelMajor: boolean,
//          out: Float32Array [windows·outFrames, n], epilogue, threads) — a 3-tap convolution with
//          padding 1 as the linear `packed` ([n, 3·channels], tap-major) over rows read in place
//          (ConvRows); x is [windows, channels, frames] when channelMajor, else [windows, frames,
//          channels]; outFrames = ⌊(frames − 1) / stride⌋ + 1.
Napi::Value JsConv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 10 || !info[0].IsExternal() || !IsArray(info[1], napi_float32_array) || !info[6].IsBoolean() || !IsArray(info[7], napi_float32_array)) {
    Napi::TypeError::New(env, "conv8Run(packed, x: Float32Array, windows, frames, channels, stride, channelMajor: boolean, out: Float32Array, epilogue, threads)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const Packed& p = *info[0].As<Napi::External<Packed>>().Data();
  ConvRows conv;
  const int windows = Int(info[2]);
  conv.frames = Int(info[3]);
  conv.channels = Int(info[4]);
  conv.stride = Int(info[5]);
  conv.channelMajor = info[6].As<Napi::Boolean>().Value();
  const int epilogue = Int(info[8]);
  Napi::Float32Array x = info[1].As<Napi::Float32Array>(), out = info[7].As<Napi::Float32Array>();
  if (windows < 0 || conv.frames < 1 || conv.channels < 1 || conv.stride < 1 || p.k != 3 * conv.channels || epilogue < 0 || epilogue > 3) {
    Napi::RangeError::New(env, "conv8Run: the weights must be [n, 3·channels], the sizes positive").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  conv.outFrames = (conv.frames - 1) / conv.stride + 1;
  const int rows = windows * conv.outFrames;
  if (x.ElementLength() < size_t(windows) * conv.frames * conv.channels || out.ElementLength() < size_t(rows) * p.n) {
    Napi::RangeError::New(env, "conv8Run: sizes do not match").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  conv.x = x.Data();
  Compute(p, nullptr, rows, Norm(), Epilogue(epilogue), Layout(), out.Data(), Int(info[9]), nullptr, nullptr, &conv);
  return env.Undefined();
}

// layerNorm(x: Float32Array [rows, d], rows, d, gamma, beta, eps, out: Float32Array [rows, d])
Napi::Value JsLayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !IsArray(info[0], napi_float32_array) || !IsArray(info[3], napi_float32_array) || !IsArray(info[4], napi_float32_array) ||
      !IsArray(info[6], napi_float32_array)) {
    Napi::TypeError::New(env, "layerNorm(x: Float32Array, rows, d, gamma, beta, eps, out: Float32Array)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int rows = Int(info[1]), d = Int(info[2]);
  Napi::Float32Array x = info[0].As<Napi::Float32Array>(), out = info[6].As<Napi::Float32Array>();
  Napi::Float32Array g = info[3].As<Napi::Float32Array>(), b = info[4].As<Napi::Float32Array>();
  if (rows < 0 || d <= 0 || x.ElementLength() < size_t(rows) * d || out.ElementLength() < size_t(rows) * d || g.ElementLength() != size_t(d) ||
      b.ElementLength() != size_t(d)) {
    Napi::RangeError::New(env, "layerNorm: sizes do not match").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const float eps = info[5].As<Napi::Number>().FloatValue();
  for (int r = 0; r < rows; r++) NormRow(x.Data() + size_t(r) * d, d, g.Data(), b.Data(), eps, out.Data() + size_t(r) * d);
  return env.Undefined();
}

// linear8Rows(packed, ids: Int32Array, out: Float32Array [ids.length, k]): rows of the weights.
Napi::Value JsRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsExternal() || !IsArray(info[1], napi_int32_array) || !IsArray(info[2], napi_float32_array)) {
    Napi::TypeError::New(env, "linear8Rows(packed, ids: Int32Array, out: Float32Array)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const Packed& p = *info[0].As<Napi::External<Packed>>().Data();
  Napi::Int32Array ids = info[1].As<Napi::Int32Array>();
  Napi::Float32Array out = info[2].As<Napi::Float32Array>();
  if (out.ElementLength() < ids.ElementLength() * size_t(p.k)) {
    Napi::RangeError::New(env, "linear8Rows: sizes do not match").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (size_t i = 0; i < ids.ElementLength(); i++) {
    if (ids[i] < 0 || ids[i] >= p.n) {
      Napi::RangeError::New(env, "linear8Rows: row " + std::to_string(ids[i]) + " outside 0.." + std::to_string(p.n - 1)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  WeightRows(p, ids.Data(), int(ids.ElementLength()), out.Data());
  return env.Undefined();
}

// selfAttend(qkv: Float32Array [rows·steps, 3d], rows, steps, heads, headDim, keys, values
//            (Float32Array [slots, heads, capacity, headDim]), capacity, slots: Int32Array,
//            lengths: Int32Array, out: Float32Array [rows·steps, d], threads)
Napi::Value JsSelfAttend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 12 || !IsArray(info[0], napi_float32_array) || !IsArray(info[5], napi_float32_array) || !IsArray(info[6], napi_float32_array) ||
      !IsArray(info[8], napi_int32_array) || !IsArray(info[9], napi_int32_array) || !IsArray(info[10], napi_float32_array)) {
    Napi::TypeError::New(env, "selfAttend(qkv, rows, steps, heads, headDim, keys, values, capacity, slots, lengths, out, threads)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  SelfAttention a;
  Napi::Float32Array qkv = info[0].As<Napi::Float32Array>(), keys = info[5].As<Napi::Float32Array>(), values = info[6].As<Napi::Float32Array>();
  Napi::Int32Array slots = info[8].As<Napi::Int32Array>(), lengths = info[9].As<Napi::Int32Array>();
  Napi::Float32Array out = info[10].As<Napi::Float32Array>();
  a.rows = Int(info[1]);
  a.steps = Int(info[2]);
  a.heads = Int(info[3]);
  a.headDim = Int(info[4]);
  a.capacity = Int(info[7]);
  const int threads = Int(info[11]);
  const size_t d = size_t(a.heads) * a.headDim;
  const size_t slotElems = d * a.capacity;
  if (a.rows < 1 || a.steps < 1 || a.heads < 1 || a.headDim < 1 || qkv.ElementLength() < size_t(a.rows) * a.steps * 3 * d ||
      out.ElementLength() < size_t(a.rows) * a.steps * d || slots.ElementLength() < size_t(a.rows) || lengths.ElementLength() < size_t(a.rows) ||
      keys.ElementLength() != values.ElementLength() || keys.ElementLength() % slotElems != 0) {
    Napi::RangeError::New(env, "selfAttend: sizes do not match").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (int r = 0; r < a.rows; r++) {
    if (slots[r] < 0 || size_t(slots[r]) >= keys.ElementLength() / slotElems || lengths[r] < 0 || lengths[r] + a.steps > a.capacity) {
      Napi::RangeError::New(env, "selfAttend: row " + std::to_string(r) + " has no valid slot, or its cache is full").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  a.qkv = qkv.Data();
  a.keys = keys.Data();
  a.values = values.Data();
  a.slots = slots.Data();
  a.lengths = lengths.Data();
  a.out = out.Data();
  const int pairs = a.rows * a.heads;
  int64_t work = 0;
  for (int r = 0; r < a.rows; r++) work += int64_t(lengths[r] + a.steps) * a.steps * a.heads * a.headDim;
  // Split from a few thousand cached positions on: the caches come from memory every step (a
  // step streams ~35 MB of tables between two visits), so even a short one is mostly waiting for
  // memory, which two threads do at once (6 rows × ~50 positions: 87 → 47 µs a call; whole
  // steps 3–8% faster at 1–8 rows than from 256 k). The other thread is warm: the q/k/v linear
  // just ran on it.
  const int parts = work < (1 << 15) ? 1 : std::max(1, std::min(threads, pairs));
  SharedPool().Run(parts, [&](int part, int nparts) {
    thread_local std::vector<float> scores;
    for (int i = int(int64_t(pairs) * part / nparts); i < int(int64_t(pairs) * (part + 1) / nparts); i++) AttendSelf(a, i / a.heads, i % a.heads, scores);
  });
  return env.Undefined();
}

}  // namespace
}  // namespace linear8

void RegisterInt8Linear(Napi::Env env, Napi::Object exports) {
  exports.Set("linear8Pack", Napi::Function::New(env, linear8::JsPack, "linear8Pack"));
  exports.Set("linear8Run", Napi::Function::New(env, linear8::JsRun, "linear8Run"));
  exports.Set("linear8Quantise", Napi::Function::New(env, linear8::JsQuantise, "linear8Quantise"));
  exports.Set("conv8Run", Napi::Function::New(env, linear8::JsConv, "conv8Run"));
  exports.Set("linear8QuantisedRows", Napi::Function::New(env, linear8::JsQuantisedRows, "linear8QuantisedRows"));
  exports.Set("layerNorm", Napi::Function::New(env, linear8::JsLayerNorm, "layerNorm"));
  exports.Set("linear8Rows", Napi::Function::New(env, linear8::JsRows, "linear8Rows"));
  exports.Set("selfAttend", Napi::Function::New(env, linear8::JsSelfAttend, "selfAttend"));
  // Whether the kernel uses int8 dot-product instructions; elsewhere ONNX Runtime's kernels win.
  exports.Set("linear8Fast", Napi::Boolean::New(env, WX_VNNI != 0));
}
}  // namespace wx
