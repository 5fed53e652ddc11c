// Portable SIMD lanes (GCC/Clang vector extensions): 16 floats with AVX-512, 8 otherwise. Shared
// by the log-mel front-end, the logit-row reductions, the cross-attention and the int8 kernels.
#pragma once
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// Whether the int8 kernels can use AVX-512 VNNI dot products (64 int8 multiply-adds per
// instruction); without them they fall back to portable code.
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define WX_VNNI 1
#else
#define WX_VNNI 0
#endif

namespace wx {
namespace simd {

#if defined(__AVX512F__)
constexpr int W = 16;
#else
constexpr int W = 8;
#endif
typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));

inline vf Splat(float s) { return vf{} + s; }

// Lane-wise mask ? a : b by bit selection (vector ?: is not portable across GCC and Clang).
inline vf Select(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

inline vf Max(vf a, vf b) { return Select(a > b, a, b); }

inline vf Abs(vf a) { return (vf)((vi)a & 0x7fffffff); }

inline float MaxLanes(vf v) {
#if defined(__AVX512F__)
  return _mm512_reduce_max_ps((__m512)v);  // a shuffle tree, not a chain of 15 dependent compares
#else
  float m = v[0];
  for (int l = 1; l < W; l++) m = v[l] > m ? v[l] : m;
  return m;
#endif
}

// Unaligned loads and stores of W floats.
inline vf Load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void Store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// Lanes summed in order (a shuffle tree measured no faster in the attention kernels).
inline float SumLanes(vf v) {
  float s = 0;
  for (int l = 0; l < W; l++) s += v[l];
  return s;
}

// e^x for x ≤ 0, lane-wise: x·log2(e) = n + f with f in [-0.5, 0.5], 2^f by a degree-6
// polynomial (relative error < 2e-7), 2^n through the exponent bits. Below -87 (and for -inf)
// the result is 0: such terms cannot change a float32 sum that contains e^0 = 1.
inline vf ExpNonPositive(vf x) {
#if defined(__AVX512F__)
  // The same polynomial with AVX-512's rounding (roundscale) and power-of-two scaling (scalef)
  // instead of the integer round trip and exponent bits: ~20% off the attention's softmax, and
  // the same results (checked over [-87, 0] in steps of 0.0013: no lane differed).
  const __mmask16 tiny = _mm512_cmp_ps_mask((__m512)x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  const __m512 xc = _mm512_max_ps((__m512)x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), xc));
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return (vf)_mm512_maskz_scalef_ps(__mmask16(~tiny), p, n);
#else
  const vi tiny = x < Splat(-87.0f);
  x = Select(tiny, Splat(-87.0f), x);
  const vf t = x * Splat(1.44269504088896341f);
  const vf n = __builtin_convertvector(__builtin_convertvector(t + Select(t < Splat(0.0f), Splat(-0.5f), Splat(0.5f)), vi), vf);
  // f·ln2 split in two steps keeps the reduced argument exact enough for float.
  const vf r = (x - n * Splat(0.693145751953125f)) - n * Splat(1.428606765330187e-06f);
  vf p = Splat(1.0f / 720.0f);
  p = p * r + Splat(1.0f / 120.0f);
  p = p * r + Splat(1.0f / 24.0f);
  p = p * r + Splat(1.0f / 6.0f);
  p = p * r + Splat(0.5f);
  p = p * r + Splat(1.0f);
  p = p * r + Splat(1.0f);
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  const vf scaled = p * (vf)bits;
  return Select(tiny, Splat(0.0f), scaled);
#endif
}

}  // namespace simd
}  // namespace wx
