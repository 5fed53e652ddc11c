// The decoder's cross-attention over 8-bit keys and values. Every decoder row reads its window's
// keys and values at every step: 18 MB per row in float32 for tiny, which made the attention
// ~40% of a batched decoder step and bound by memory bandwidth (ONNX Runtime's CPU attention
// takes float32 only). Here a window's keys and values are stored once as int8 with one scale per
// position and head (4.6 MB per row), and the attention converts them on the fly. The encoder's
// self-attention (`windowAttend`) quantises each window's keys and values the same way and runs
// the same kernel over them.
//
// Layouts, per decoder layer, `stride` = positions rounded up to the vector width:
//   keys   [slots, heads, stride / W, headDim, W] int8 (transposed in tiles of W positions: a
//          vector is W positions of one dim, and a tile's dims are contiguous, so the keys stream
//          through memory in order)
//   values [slots, heads, stride, headDim] int8
//   scales [slots, heads, 2·stride + headDim] float32 (for keys and for values): one per position
//          and half of the head's dims, then one per channel (channels are normalised by their
//          largest magnitude over the window first)
// With int8 dot products (AVX-512 VNNI, heads of a multiple of 32 dims) keys and values are laid
// out for them instead (see `Vnni` below); the numbers stored are the same.
// Queries arrive already scaled by 1/sqrt(headDim) (folded into the query projection).
#include <napi.h>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 warns inside its own AVX-512 headers (an undefined vector passed to a widening intrinsic).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "modules.h"
#include "napi_args.h"
#include "pool.h"
#include "simd.h"

namespace wx {
namespace cross {
namespace {

using namespace simd;

// W int8 values widened to floats. Compilers scalarise a generic int8 → float vector conversion,
// so each instruction set gets its own widening.
inline vf LoadI8(const int8_t* p) {
#if defined(__AVX512F__)
  return (vf)_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#elif defined(__AVX2__)
  int64_t bits;
  std::memcpy(&bits, p, 8);
  return (vf)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bits)));
#elif defined(__ARM_NEON)
  const int16x8_t w = vmovl_s8(vld1_s8(p));
  const float32x4_t lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
  const float32x4_t hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
  vf v;
  std::memcpy(&v, &lo, 16);
  std::memcpy(reinterpret_cast<char*>(&v) + 16, &hi, 16);
  return v;
#else
  vf v;
  for (int l = 0; l < W; l++) v[l] = float(p[l]);
  return v;
#endif
}

// Scales per position and head: one per group of headDim / kGroups dims.
constexpr int kGroups = 2;

struct Shape {
  int heads, headDim, stride;
};

// Converting each int8 key or value to float took three instructions per 16 multiply-adds, which
// made this attention compute-bound (a batch of 8 rows: 1.2 ms for 4 layers with its keys in
// cache, 1.6 ms from memory). With VNNI both products run as int8 dot products, 64 multiply-adds
// an instruction. Their other operand — the query, and the softmax weights — is float, so it is
// split into 8-bit parts (one dot product each), enough of them that the keys' and values' own
// int8 rounding stays the one that matters. Layouts then:
//   keys   [heads, stride / 16, headDim / 4, 16, 4] as unsigned bytes k + 128: a vector is 16
//          positions × 4 dims, the dot product's unsigned operand
//   values [heads, stride / 4, headDim, 4]: a vector is 16 dims × 4 positions
//
// How many 8-bit parts (queries; softmax weights): the decoder takes three of each
// (~22 bits): two (~15 bits) measured as exact against double precision, but a change of 1e-7 in a
// query then moved the output by ~1e-6, enough to flip the int8 rounding of later layers'
// activations — the same step through ONNX Runtime's linears and ours then differed by 0.08 in a
// logit instead of 1e-5. The third costs ~30% at one row. The encoder's self-attention (1500
// queries a window) takes two of each: on the 100 dev clips as accurate as ONNX Runtime's float32
// attention (bench/RESULTS.md). One part of each query (int8 per half head, as the linears
// quantise their inputs) was ~10% faster and as accurate on the dev clips, but moved fx-short's
// first timestamp by one step.
constexpr int kMaxParts = 3;
constexpr int kDecoderParts = 3;
constexpr int kEncoderQueryParts = 2;
constexpr int kEncoderWeightParts = 2;

// Scratch floats per query: scores, the weighted probabilities per group, their 8-bit parts.
inline size_t ScratchFloats(int stride) { return size_t(1 + kGroups) * stride + (size_t(kGroups) * kMaxParts * stride + 3) / 4; }

typedef int8_t vb __attribute__((vector_size(W)));  // W int8 lanes

inline bool Vnni(int headDim) { return WX_VNNI && headDim % 32 == 0 && headDim <= 128; }

inline size_t KeyAt(bool vnni, int t, int d, int dh) {
  if (vnni) return (size_t(t / 16) * (dh / 4) + d / 4) * 64 + (t % 16) * 4 + d % 4;
  return (size_t(t / W) * dh + d) * W + t % W;
}

inline size_t ValueAt(bool vnni, int t, int d, int dh) {
  if (vnni) return (size_t(t / 4) * dh + d) * 4 + t % 4;
  return size_t(t) * dh + d;
}

#if WX_VNNI
inline __m512i Broadcast4(const void* p) {
  int32_t four;
  std::memcpy(&four, p, 4);
  return _mm512_set1_epi32(four);
}

// R query vectors (times qScale) of one head against one window's keys/values, in the VNNI
// layouts. G: vectors of 16 dims per group of scales (headDim / 32); QP, WP: 8-bit parts of the
// queries and of the softmax weights; R > 1 when queries share the keys/values (the encoder): each
// key or value vector loaded then serves R of them, and their dot-product chains interleave.
// `scratch` holds R rows of ScratchFloats(stride).
template <int G, int QP, int WP, int R>
void AttendVnni(const Shape& s, const float* const* q, float qScale, int length, const uint8_t* keys, const float* keyScales, const int8_t* values,
                const float* valueScales, float* const* out, float* scratch) {
  const int stride = s.stride;  // a local: the kernel's byte stores may alias anything in memory
  constexpr int gs = 16 * G, dh = kGroups * gs, quads = gs / 4;
  const int chunks = (length + 15) / 16;
  const size_t rowScratch = ScratchFloats(stride);
  const float* keyChannel = keyScales + kGroups * stride;
  const float* valueChannel = valueScales + kGroups * stride;
  // The queries times the keys' channel scales, per group, in signed 8-bit parts:
  // qc ≈ qs·(p0 + p1/254 + p2/254²).
  alignas(64) int8_t qp[R][QP][dh];
  float qs[R][kGroups];
  int32_t corr[R][kGroups][QP];
  for (int r = 0; r < R; r++) {
    for (int g = 0; g < kGroups; g++) {
      float m = 0;
      for (int d = g * gs; d < (g + 1) * gs; d++) m = std::max(m, std::fabs(q[r][d] * qScale * keyChannel[d]));
      qs[r][g] = m / 127.0f;
      const float k = m > 0 ? 127.0f / m : 0.0f;
      int32_t sum[QP] = {};
      for (int d = g * gs; d < (g + 1) * gs; d++) {
        float y = q[r][d] * qScale * keyChannel[d] * k;  // in [-127, 127]
        for (int i = 0; i < QP; i++) {
          const float part = std::max(-127.0f, std::min(127.0f, std::nearbyint(y)));
          qp[r][i][d] = int8_t(part);
          sum[i] += int(part);
          y = (y - part) * 254.0f;  // the remainder, in [-127, 127] again
        }
      }
      // The keys are stored + 128: Σ q·(k + 128) = Σ q·k + 128·Σ q.
      for (int i = 0; i < QP; i++) corr[r][g][i] = 128 * sum[i];
    }
  }
  __m512 vmax[R];
  for (int r = 0; r < R; r++) vmax[r] = _mm512_set1_ps(-INFINITY);
  for (int c = 0; c < chunks; c++) {
    const int t = c * 16;
    const uint8_t* tile = keys + size_t(c) * (dh / 4) * 64;
    __m512 sc[R];
    for (int r = 0; r < R; r++) sc[r] = _mm512_setzero_ps();
    for (int g = 0; g < kGroups; g++) {
      __m512i acc[R][QP];
      for (int r = 0; r < R; r++)
        for (int i = 0; i < QP; i++) acc[r][i] = _mm512_setzero_si512();
      for (int j = 0; j < quads; j++) {
        const int quad = g * quads + j;
        const __m512i kv = _mm512_loadu_si512(tile + quad * 64);
        for (int r = 0; r < R; r++)
          for (int i = 0; i < QP; i++) acc[r][i] = _mm512_dpbusd_epi32(acc[r][i], kv, Broadcast4(qp[r][i] + 4 * quad));
      }
      const __m512 keyScale = _mm512_loadu_ps(keyScales + g * stride + t);
      for (int r = 0; r < R; r++) {
        __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][QP - 1], _mm512_set1_epi32(corr[r][g][QP - 1])));
        for (int i = QP - 2; i >= 0; i--)
          dot = _mm512_fmadd_ps(dot, _mm512_set1_ps(1.0f / 254.0f), _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][i], _mm512_set1_epi32(corr[r][g][i]))));
        sc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dot, _mm512_set1_ps(qs[r][g])), keyScale, sc[r]);
      }
    }
    for (int r = 0; r < R; r++) {
      if (t + 16 > length) sc[r] = _mm512_mask_blend_ps(__mmask16((1u << (length - t)) - 1), _mm512_set1_ps(-INFINITY), sc[r]);
      _mm512_storeu_ps(scratch + r * rowScratch + t, sc[r]);
      vmax[r] = _mm512_max_ps(vmax[r], sc[r]);
    }
  }
  // Per query: softmax weights times each position's value scales, per group, then into unsigned
  // 8-bit parts (w ≈ ws·(p0 + p1/255 + p2/255²); unsigned: the other operand is the values).
  float ws[R][kGroups], inv[R];
  const uint8_t* wq[R];
  for (int r = 0; r < R; r++) {
    float* scores = scratch + r * rowScratch;
    float* weighted = scores + stride;  // [kGroups][stride]
    uint8_t* parts = reinterpret_cast<uint8_t*>(weighted + kGroups * stride);  // [kGroups][WP][stride]
    wq[r] = parts;
    __m512 vsum = _mm512_setzero_ps();
    __m512 wmax[kGroups];
    for (int g = 0; g < kGroups; g++) wmax[g] = _mm512_setzero_ps();
    const vf vm = Splat(_mm512_reduce_max_ps(vmax[r]));
    for (int c = 0; c < chunks; c++) {
      const int t = c * 16;
      const vf e = ExpNonPositive(Load(scores + t) - vm);
      vsum = _mm512_add_ps(vsum, (__m512)e);
      for (int g = 0; g < kGroups; g++) {
        const __m512 w = _mm512_mul_ps((__m512)e, _mm512_loadu_ps(valueScales + g * stride + t));
        _mm512_storeu_ps(weighted + g * stride + t, w);
        wmax[g] = _mm512_max_ps(wmax[g], w);
      }
    }
    inv[r] = 1.0f / _mm512_reduce_add_ps(vsum);
    for (int g = 0; g < kGroups; g++) {
      const float mx = _mm512_reduce_max_ps(wmax[g]);
      ws[r][g] = mx / 255.0f;
      const __m512 k = _mm512_set1_ps(mx > 0 ? 255.0f / mx : 0.0f);
      uint8_t* gp = parts + size_t(g) * WP * stride;
      for (int c = 0; c < chunks; c++) {
        const int t = c * 16;
        __m512 y = _mm512_mul_ps(_mm512_loadu_ps(weighted + g * stride + t), k);  // in [0, 255]
        for (int i = 0; i < WP; i++) {
          // The last part rounds; the others take the floor (y ≥ 0: truncation) so the rest is ≥ 0.
          const __m512i part = i + 1 < WP ? _mm512_cvttps_epi32(y) : _mm512_cvtps_epi32(y);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(gp + size_t(i) * stride + t), _mm512_cvtusepi32_epi8(part));
          y = _mm512_mul_ps(_mm512_sub_ps(y, _mm512_cvtepi32_ps(part)), _mm512_set1_ps(255.0f));
        }
      }
    }
  }
  __m512i acc[R][kGroups][WP][G];
  for (int r = 0; r < R; r++)
    for (int g = 0; g < kGroups; g++)
      for (int i = 0; i < WP; i++)
        for (int j = 0; j < G; j++) acc[r][g][i][j] = _mm512_setzero_si512();
  const int steps = (length + 3) / 4;  // weights past `length` are 0 up to the chunk's end
  if constexpr (R * kGroups * WP * G <= 12) {
    // One query (the decoder): every group in one pass, so the values stream through memory once
    // and in order (group by group, each pass read half of every line pair and the second pass
    // missed again), requested a few steps ahead.
    for (int tq = 0; tq < steps; tq++) {
      const int8_t* v = values + size_t(tq) * dh * 4;
      _mm_prefetch(reinterpret_cast<const char*>(v + 8 * dh * 4), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v + 8 * dh * 4 + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v + 8 * dh * 4 + 128), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v + 8 * dh * 4 + 192), _MM_HINT_T0);
      for (int g = 0; g < kGroups; g++) {
        for (int j = 0; j < G; j++) {
          const __m512i vv = _mm512_loadu_si512(v + (g * gs + j * 16) * 4);
          for (int r = 0; r < R; r++) {
            const uint8_t* gp = wq[r] + size_t(g) * WP * stride + 4 * tq;
            for (int i = 0; i < WP; i++) acc[r][g][i][j] = _mm512_dpbusd_epi32(acc[r][g][i][j], Broadcast4(gp + size_t(i) * stride), vv);
          }
        }
      }
    }
  } else {
    // Group by group: fewer live accumulators than all at once (which spilled registers).
    for (int g = 0; g < kGroups; g++) {
      for (int tq = 0; tq < steps; tq++) {
        const int8_t* v = values + size_t(tq) * dh * 4;
        for (int j = 0; j < G; j++) {
          const __m512i vv = _mm512_loadu_si512(v + (g * gs + j * 16) * 4);
          for (int r = 0; r < R; r++) {
            const uint8_t* gp = wq[r] + size_t(g) * WP * stride + 4 * tq;
            for (int i = 0; i < WP; i++) acc[r][g][i][j] = _mm512_dpbusd_epi32(acc[r][g][i][j], Broadcast4(gp + size_t(i) * stride), vv);
          }
        }
      }
    }
  }
  for (int r = 0; r < R; r++) {
    for (int g = 0; g < kGroups; g++) {
      const __m512 scale = _mm512_set1_ps(ws[r][g] * inv[r]);
      for (int j = 0; j < G; j++) {
        const int d = g * gs + j * 16;
        __m512 sum = _mm512_cvtepi32_ps(acc[r][g][WP - 1][j]);
        for (int i = WP - 2; i >= 0; i--) sum = _mm512_fmadd_ps(sum, _mm512_set1_ps(1.0f / 255.0f), _mm512_cvtepi32_ps(acc[r][g][i][j]));
        _mm512_storeu_ps(out[r] + d, _mm512_mul_ps(_mm512_mul_ps(sum, scale), _mm512_loadu_ps(valueChannel + d)));
      }
    }
  }
}
#endif

// One query vector of one head against one window's keys/values, in the portable layouts.
void AttendHeadFloat(const Shape& s, const float* q, int length, const int8_t* keysT, const float* keyScales, const int8_t* values,
                     const float* valueScales, float* out, float* scores) {
  const int dh = s.headDim;
  const int chunks = (length + W - 1) / W;
  // The keys' channel scales go into the query, the values' into the output.
  const float* keyChannel = keyScales + kGroups * s.stride;
  const float* valueChannel = valueScales + kGroups * s.stride;
  const int gs = dh / kGroups;
  float qc[128];
  for (int d = 0; d < dh; d++) qc[d] = q[d] * keyChannel[d];
  vf vmax = Splat(-INFINITY);
  for (int c = 0; c < chunks; c++) {
    const int t = c * W;
    const int8_t* tile = keysT + size_t(c) * dh * W;
    vf sc = Splat(0.0f);
    for (int g = 0; g < kGroups; g++) {
      vf a0 = Splat(0.0f), a1 = Splat(0.0f);
      int d = g * gs;
      const int end = d + gs;
      for (; d + 1 < end; d += 2) {
        a0 += Splat(qc[d]) * LoadI8(tile + d * W);
        a1 += Splat(qc[d + 1]) * LoadI8(tile + (d + 1) * W);
      }
      if (d < end) a0 += Splat(qc[d]) * LoadI8(tile + d * W);
      sc += (a0 + a1) * Load(keyScales + g * s.stride + t);
    }
    if (t + W > length) {
      vi lane;
      for (int l = 0; l < W; l++) lane[l] = t + l < length ? -1 : 0;
      sc = Select(lane, sc, Splat(-INFINITY));
    }
    Store(scores + t, sc);
    vmax = Max(vmax, sc);
  }
  float m = -INFINITY;
  for (int l = 0; l < W; l++) m = vmax[l] > m ? vmax[l] : m;
  // Probabilities times each position's value scales (one per group of dims): the value rows
  // then stay int8.
  float* weighted = scores + s.stride;  // [kGroups][stride]
  vf vsum = Splat(0.0f);
  const vf vm = Splat(m);
  for (int c = 0; c < chunks; c++) {
    const int t = c * W;
    const vf e = ExpNonPositive(Load(scores + t) - vm);
    vsum += e;
    for (int g = 0; g < kGroups; g++) Store(weighted + g * s.stride + t, e * Load(valueScales + g * s.stride + t));
  }
  const float inv = 1.0f / SumLanes(vsum);
  // Whole vectors when a group is a multiple of W (headDim 64: W = 8 or 16); otherwise scalar.
  const int full = gs % W == 0 ? dh : 0;
  constexpr int kMaxVec = 128 / W;
  vf acc[kMaxVec];
  for (int j = 0; j < full / W; j++) acc[j] = Splat(0.0f);
  float tail[128] = {};
  const int perGroup = full / W / kGroups;
  for (int t = 0; t < length; t++) {
    const int8_t* row = values + size_t(t) * dh;
    for (int g = 0; g < kGroups && full; g++) {
      const vf p = Splat(weighted[g * s.stride + t]);
      for (int j = g * perGroup; j < (g + 1) * perGroup; j++) acc[j] += p * LoadI8(row + j * W);
    }
    for (int k = full; k < dh; k++) tail[k] += weighted[(k / gs) * s.stride + t] * float(row[k]);
  }
  for (int j = 0; j < full / W; j++) Store(out + j * W, acc[j] * Splat(inv) * Load(valueChannel + j * W));
  for (int k = full; k < dh; k++) out[k] = tail[k] * inv * valueChannel[k];
}

template <int QP, int WP, int R>
void AttendVnniParts(const Shape& s, const float* const* q, float qScale, int length, const uint8_t* k, const float* keyScales, const int8_t* values,
                     const float* valueScales, float* const* out, float* scratch) {
#if WX_VNNI
  switch (s.headDim) {
    case 32: return AttendVnni<1, QP, WP, R>(s, q, qScale, length, k, keyScales, values, valueScales, out, scratch);
    case 64: return AttendVnni<2, QP, WP, R>(s, q, qScale, length, k, keyScales, values, valueScales, out, scratch);
    case 96: return AttendVnni<3, QP, WP, R>(s, q, qScale, length, k, keyScales, values, valueScales, out, scratch);
    default: return AttendVnni<4, QP, WP, R>(s, q, qScale, length, k, keyScales, values, valueScales, out, scratch);
  }
#else
  (void)s, (void)q, (void)qScale, (void)length, (void)k, (void)keyScales, (void)values, (void)valueScales, (void)out, (void)scratch;
#endif
}

// One decoder row's query of one head: the VNNI kernel where the CPU and head size allow it,
// else the portable one.
void Attend(const Shape& s, const float* q, int length, const int8_t* keys, const float* keyScales, const int8_t* values, const float* valueScales,
            float* out, float* scratch) {
  if (Vnni(s.headDim)) {
    const uint8_t* k = reinterpret_cast<const uint8_t*>(keys);
    return AttendVnniParts<kDecoderParts, kDecoderParts, 1>(s, &q, 1.0f, length, k, keyScales, values, valueScales, &out, scratch);
  }
  AttendHeadFloat(s, q, length, keys, keyScales, values, valueScales, out, scratch);
}

// Four positions' rows of int8 values into the VNNI value layout: out[d·4 + j] = rows[j][d].
void InterleaveQuad(const int8_t (*rows)[128], int dh, int8_t* out) {
  int d = 0;
#if defined(__AVX512F__)
  const auto widen = [&](int j) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j] + d))); };
  for (; d + 16 <= dh; d += 16) {
    const __m512i lo = _mm512_or_si512(widen(0), _mm512_slli_epi32(widen(1), 8));
    const __m512i hi = _mm512_or_si512(_mm512_slli_epi32(widen(2), 16), _mm512_slli_epi32(widen(3), 24));
    _mm512_storeu_si512(out + d * 4, _mm512_or_si512(lo, hi));
  }
#endif
  for (; d < dh; d++)
    for (int j = 0; j < 4; j++) out[d * 4 + j] = rows[j][d];
}

// One head of one window ([positions, headDim] float32) into int8 (`dst`: [stride·headDim] in
// the key or value layout) with its scales (`scales`: [kGroups·stride + headDim]): each channel
// divided by its largest magnitude over the window, then each position's half head by its own
// (max / 127). Positions past `positions` are zeroed.
void QuantiseHead(const float* x, int P, int dh, int stride, bool keys, int8_t* dst, float* sc) {
  const bool vnni = Vnni(dh);
  std::memset(dst, keys && vnni ? 0x80 : 0, size_t(stride) * dh);  // padding: zeros (+ 128 for VNNI keys)
  const int gs = dh / kGroups;
  const int lanes = gs % W == 0 ? dh : 0;  // dims done in whole vectors (all of them for Whisper's 64)
  // Rows of 4 consecutive positions: VNNI values interleave them byte by byte.
  alignas(64) int8_t quad[4][128];
  alignas(64) float inv[128];
  // Channels are divided by their largest magnitude over the window first: a few large channels
  // would otherwise set every position's scale and round the small ones away.
  float* channel = sc + kGroups * stride;
  for (int d = 0; d < dh; d++) channel[d] = 0;
  for (int t = 0; t < P; t++) {
    const float* v = x + size_t(t) * dh;
    int d = 0;
    for (; d < lanes; d += W) Store(channel + d, Max(Load(channel + d), Abs(Load(v + d))));
    for (; d < dh; d++) channel[d] = std::max(channel[d], std::fabs(v[d]));
  }
  for (int d = 0; d < dh; d++) {
    if (channel[d] == 0) channel[d] = 1;
    inv[d] = 1.0f / channel[d];
  }
  for (int t = P; t < stride; t++)
    for (int g = 0; g < kGroups; g++) sc[g * stride + t] = 0;
  for (int t = 0; t < P; t++) {
    const float* v = x + size_t(t) * dh;
    int8_t* row = quad[t % 4];
    for (int g = 0; g < kGroups; g++) {
      const int from = g * gs, to = from + gs;
      float m = 0;
      if (lanes) {
        vf vm = Splat(0.0f);
        for (int d = from; d < to; d += W) vm = Max(vm, Abs(Load(v + d) * Load(inv + d)));
        m = MaxLanes(vm);
      } else {
        for (int d = from; d < to; d++) m = std::max(m, std::fabs(v[d] * inv[d]));
      }
      sc[g * stride + t] = m / 127.0f;
      const float k = m > 0 ? 127.0f / m : 0.0f;
      // Rounds half away from zero; |y| ≤ 127 by construction.
      if (lanes) {
        for (int d = from; d < to; d += W) {
          const vf y = Load(v + d) * Load(inv + d) * Splat(k);
          const vi r = __builtin_convertvector(y + Select(y >= Splat(0.0f), Splat(0.5f), Splat(-0.5f)), vi);
          const vb bytes = __builtin_convertvector(r, vb);
          std::memcpy(row + d, &bytes, W);
        }
      } else {
        for (int d = from; d < to; d++) {
          const float y = v[d] * inv[d] * k;
          row[d] = int8_t(int(y + (y >= 0 ? 0.5f : -0.5f)));
        }
      }
    }
    if (keys && vnni) {
      // A position's 4-dim groups are dwords 64 bytes apart in its tile of 16 positions.
      int8_t* tile = dst + size_t(t / 16) * (dh / 4) * 64 + (t % 16) * 4;
      for (int d = 0; d < dh; d += 4) {
        uint32_t four;
        std::memcpy(&four, row + d, 4);
        four ^= 0x80808080u;  // k + 128 as bytes: each sign bit flipped
        std::memcpy(tile + (d / 4) * 64, &four, 4);
      }
    } else if (!keys && vnni) {
      if (t % 4 == 3 || t == P - 1) {
        for (int j = t % 4 + 1; j < 4; j++) std::memset(quad[j], 0, dh);
        InterleaveQuad(quad, dh, dst + size_t(t / 4) * dh * 4);
      }
    } else {
      for (int d = 0; d < dh; d++) dst[keys ? KeyAt(vnni, t, d, dh) : ValueAt(vnni, t, d, dh)] = row[d];
    }
  }
}

// crossQuantize(src: Float32Array [heads, positions, headDim], heads, positions, headDim, stride,
//               keys: boolean, dst: Int8Array, scales: Float32Array, threads?)
// One window's keys or values of one layer into int8 (QuantiseHead per head, heads split over
// the threads); `scales` gets [heads, 2·stride + headDim].
Napi::Value JsQuantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || !IsArray(info[0], napi_float32_array) || !info[5].IsBoolean() || !IsArray(info[6], napi_int8_array) ||
      !IsArray(info[7], napi_float32_array)) {
    Napi::TypeError::New(env, "crossQuantize(src: Float32Array, heads, positions, headDim, stride, keys: boolean, dst: Int8Array, scales: Float32Array)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int H = Int(info[1]), P = Int(info[2]), dh = Int(info[3]), stride = Int(info[4]);
  const bool keys = info[5].As<Napi::Boolean>().Value();
  Napi::Float32Array src = info[0].As<Napi::Float32Array>();
  Napi::Int8Array dst = info[6].As<Napi::Int8Array>();
  Napi::Float32Array scales = info[7].As<Napi::Float32Array>();
  if (H < 1 || dh < 1 || dh > 128 || P < 1 || P > stride || stride % W != 0 || src.ElementLength() < size_t(H) * P * dh ||
      dst.ElementLength() < size_t(H) * stride * dh || scales.ElementLength() < size_t(H) * (kGroups * stride + dh)) {
    Napi::RangeError::New(env, "crossQuantize: sizes do not match").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int sr = kGroups * stride + dh;
  const int threads = info.Length() > 8 && info[8].IsNumber() ? std::max(1, std::min(H, Int(info[8]))) : 1;
  const float* x = src.Data();
  int8_t* q = dst.Data();
  float* sc = scales.Data();
  SharedPool().Run(threads, [&](int part, int parts) {
    for (int h = H * part / parts; h < H * (part + 1) / parts; h++)
      QuantiseHead(x + size_t(h) * P * dh, P, dh, stride, keys, q + size_t(h) * stride * dh, sc + size_t(h) * sr);
  });
  return env.Undefined();
}

// windowAttend(qkv: Float32Array [windows, 3·heads, positions, headDim] (queries, keys, values
//              split into heads, as the encoder's q/k/v linear writes them), windows, positions,
//              heads, headDim, qScale, out: Float32Array [windows·positions, heads·headDim], threads)
// The encoder's self-attention: every position of a window attends to all of the window's
// positions. Keys and values are quantised as the decoder's cross-attention stores them, then
// the queries run the same kernel, two at a time (kEncoderQueryParts, kEncoderWeightParts).
// Needs `windowAttendFast(headDim)`.
Napi::Value JsWindowAttend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || !IsArray(info[0], napi_float32_array) || !info[5].IsNumber() || !IsArray(info[6], napi_float32_array)) {
    Napi::TypeError::New(env, "windowAttend(qkv: Float32Array, windows, positions, heads, headDim, qScale, out: Float32Array, threads)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int B = Int(info[1]), T = Int(info[2]), H = Int(info[3]), dh = Int(info[4]);
  const float qScale = info[5].As<Napi::Number>().FloatValue();
  const int threads = Int(info[7]);
  Napi::Float32Array qkv = info[0].As<Napi::Float32Array>(), out = info[6].As<Napi::Float32Array>();
  const size_t d = size_t(H) * dh;
  if (B < 1 || T < 1 || H < 1 || !Vnni(dh) || qkv.ElementLength() < size_t(B) * T * 3 * d || out.ElementLength() < size_t(B) * T * d) {
    Napi::RangeError::New(env, "windowAttend: sizes do not match (or heads of " + std::to_string(dh) + " dims have no int8 kernel)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const Shape s{H, dh, (T + W - 1) / W * W};
  const size_t headElems = size_t(s.stride) * dh, headScales = size_t(kGroups) * s.stride + dh;
  // Not zero-filled here: QuantiseHead writes every byte, padding included.
  const std::unique_ptr<int8_t[]> keys(new int8_t[size_t(B) * H * headElems]), values(new int8_t[size_t(B) * H * headElems]);
  const std::unique_ptr<float[]> keyScales(new float[size_t(B) * H * headScales]), valueScales(new float[size_t(B) * H * headScales]);
  const float* x = qkv.Data();
  // Quantise each (window, head)'s keys and values, then attend: both split over the threads.
  const int pairs = B * H;
  SharedPool().Run(std::max(1, std::min(threads, pairs)), [&](int part, int parts) {
    for (int i = int(int64_t(pairs) * part / parts); i < int(int64_t(pairs) * (part + 1) / parts); i++) {
      const int b = i / H, h = i % H;
      const float* k = x + ((size_t(b) * 3 * H + H + h) * T) * dh;
      const float* v = x + ((size_t(b) * 3 * H + 2 * H + h) * T) * dh;
      QuantiseHead(k, T, dh, s.stride, true, keys.get() + size_t(i) * headElems, keyScales.get() + size_t(i) * headScales);
      QuantiseHead(v, T, dh, s.stride, false, values.get() + size_t(i) * headElems, valueScales.get() + size_t(i) * headScales);
    }
  });
  float* o = out.Data();
  // Items are tiles of kQueries positions in (window, head, position) order: a thread's queries
  // share one head's keys/values, which stay in its L2 (~200 KB for 1500 positions).
  constexpr int kQueries = 2;  // 3 spilled registers; 1 was ~8% slower
  const int tiles = (T + kQueries - 1) / kQueries;
  const int64_t items = int64_t(pairs) * tiles;
  SharedPool().Run(std::max(1, threads), [&](int part, int parts) {
    std::vector<float> scratch(kQueries * ScratchFloats(s.stride));
    for (int64_t i = items * part / parts; i < items * (part + 1) / parts; i++) {
      const int pair = int(i / tiles), t = int(i % tiles) * kQueries, b = pair / H, h = pair % H;
      const int n = std::min(kQueries, T - t);
      const float* q[kQueries];
      float* dst[kQueries];
      for (int r = 0; r < n; r++) {
        q[r] = x + ((size_t(b) * 3 * H + h) * T + t + r) * dh;
        dst[r] = o + (size_t(b) * T + t + r) * d + size_t(h) * dh;
      }
      const uint8_t* k = reinterpret_cast<const uint8_t*>(keys.get() + size_t(pair) * headElems);
      const float* ks = keyScales.get() + size_t(pair) * headScales;
      const int8_t* v = values.get() + size_t(pair) * headElems;
      const float* vs = valueScales.get() + size_t(pair) * headScales;
      if (n == kQueries) AttendVnniParts<kEncoderQueryParts, kEncoderWeightParts, kQueries>(s, q, qScale, T, k, ks, v, vs, dst, scratch.data());
      else AttendVnniParts<kEncoderQueryParts, kEncoderWeightParts, 1>(s, q, qScale, T, k, ks, v, vs, dst, scratch.data());
    }
  });
  return env.Undefined();
}

// crossAttend(q: Float32Array [rows, steps, heads·headDim], rows, steps, heads, headDim, stride,
//             slotOf: Int32Array [rows], lengths: Int32Array [rows], keys: Int8Array, keyScales:
//             Float32Array, values: Int8Array, valueScales: Float32Array, out: Float32Array, threads)
// Row r attends to slot slotOf[r]'s first lengths[r] positions; rows may share a slot (beam search).
Napi::Value JsAttend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 14 || !IsArray(info[0], napi_float32_array) || !IsArray(info[6], napi_int32_array) || !IsArray(info[7], napi_int32_array) ||
      !IsArray(info[8], napi_int8_array) || !IsArray(info[9], napi_float32_array) || !IsArray(info[10], napi_int8_array) ||
      !IsArray(info[11], napi_float32_array) || !IsArray(info[12], napi_float32_array)) {
    Napi::TypeError::New(env,
                         "crossAttend(q, rows, steps, heads, headDim, stride, slotOf: Int32Array, lengths: Int32Array, keys: Int8Array, keyScales, values: "
                         "Int8Array, valueScales, out: Float32Array, threads)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int rows = Int(info[1]), steps = Int(info[2]);
  const Shape s{Int(info[3]), Int(info[4]), Int(info[5])};
  const int threads = Int(info[13]);
  Napi::Float32Array q = info[0].As<Napi::Float32Array>(), out = info[12].As<Napi::Float32Array>();
  Napi::Int32Array slotOf = info[6].As<Napi::Int32Array>(), lengths = info[7].As<Napi::Int32Array>();
  Napi::Int8Array keys = info[8].As<Napi::Int8Array>(), values = info[10].As<Napi::Int8Array>();
  Napi::Float32Array keyScales = info[9].As<Napi::Float32Array>(), valueScales = info[11].As<Napi::Float32Array>();
  const size_t d = size_t(s.heads) * s.headDim;
  const size_t slotElems = size_t(s.heads) * s.stride * s.headDim;
  const size_t slotScales = size_t(s.heads) * (kGroups * s.stride + s.headDim);
  const size_t slots = keys.ElementLength() / std::max<size_t>(1, slotElems);
  if (rows < 1 || steps < 1 || s.heads < 1 || s.headDim < 1 || s.headDim > 128 || s.stride % W != 0 || q.ElementLength() < rows * steps * d ||
      out.ElementLength() < rows * steps * d || slotOf.ElementLength() < size_t(rows) || lengths.ElementLength() < size_t(rows) ||
      values.ElementLength() != keys.ElementLength() || keyScales.ElementLength() < slots * slotScales ||
      valueScales.ElementLength() < slots * slotScales) {
    Napi::RangeError::New(env, "crossAttend: sizes do not match").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (int r = 0; r < rows; r++) {
    if (slotOf[r] < 0 || size_t(slotOf[r]) >= slots || lengths[r] < 1 || lengths[r] > s.stride) {
      Napi::RangeError::New(env, "crossAttend: row " + std::to_string(r) + " has no valid slot or length").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  const float* qd = q.Data();
  float* od = out.Data();
  const int32_t* slot = slotOf.Data();
  const int32_t* len = lengths.Data();
  const int8_t* kd = keys.Data();
  const int8_t* vd = values.Data();
  const float* ksd = keyScales.Data();
  const float* vsd = valueScales.Data();
  // Items head-major, rows within: rows sharing a slot read the same head's keys from cache.
  const int items = s.heads * rows;
  const std::function<void(int, int)> work = [&](int part, int parts) {
    std::vector<float> scratch(ScratchFloats(s.stride));
    const int from = int(int64_t(items) * part / parts), to = int(int64_t(items) * (part + 1) / parts);
    for (int i = from; i < to; i++) {
      const int h = i / rows, r = i % rows;
      const size_t sl = size_t(slot[r]);
      const int8_t* kT = kd + sl * slotElems + size_t(h) * s.headDim * s.stride;
      const int8_t* v = vd + sl * slotElems + size_t(h) * s.stride * s.headDim;
      const float* ks = ksd + sl * slotScales + size_t(h) * (kGroups * s.stride + s.headDim);
      const float* vs = vsd + sl * slotScales + size_t(h) * (kGroups * s.stride + s.headDim);
      for (int st = 0; st < steps; st++) {
        const size_t at = (size_t(r) * steps + st) * d + size_t(h) * s.headDim;
        Attend(s, qd + at, len[r], kT, ks, v, vs, od + at, scratch.data());
      }
    }
  };
  // Only tiny calls stay on one thread. One row's 6 heads (1.2 MB of keys and values, from
  // memory every step) split over both: a batch-1 step 8–12% faster than when a call needed
  // 4× that much work (paired steps, both orders); the helper is warm from the linear before.
  const int parts = int64_t(rows) * steps * s.heads * s.stride * s.headDim < (1 << 18) ? 1 : std::max(1, threads);
  SharedPool().Run(parts, work);
  return env.Undefined();
}

}  // namespace
}  // namespace cross

void RegisterCrossAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("crossQuantize", Napi::Function::New(env, cross::JsQuantize, "crossQuantize"));
  exports.Set("crossAttend", Napi::Function::New(env, cross::JsAttend, "crossAttend"));
  exports.Set("crossVectorWidth", Napi::Number::New(env, simd::W));
  exports.Set("windowAttend", Napi::Function::New(env, cross::JsWindowAttend, "windowAttend"));
  // 8-bit parts of the encoder attention's float operands (the roofline benchmark counts its dot products).
  Napi::Object parts = Napi::Object::New(env);
  parts.Set("query", Napi::Number::New(env, cross::kEncoderQueryParts));
  parts.Set("weights", Napi::Number::New(env, cross::kEncoderWeightParts));
  exports.Set("windowAttendParts", parts);
  exports.Set("windowAttendFast", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Boolean::New(info.Env(), info.Length() > 0 && info[0].IsNumber() && cross::Vnni(Int(info[0])));
  }, "windowAttendFast"));
}
}  // namespace wx
