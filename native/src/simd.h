// Portable SIMD lanes (GCC/Clang vector extensions): 16 floats with AVX-512, 8 otherwise. Shared
// by the log-mel front-end and the logit-row reductions.
#pragma once
#include <cstdint>

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

}  // namespace simd
}  // namespace wx
