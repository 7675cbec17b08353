#pragma once
// Dot products of an fp32 vector with a row stored as fp32, fp16 or bf16 (attention's
// q . k), and conversion of stored rows to fp32. The matmul has its own register-tiled
// kernels (matmul_kernels.h).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/convert.h"
#include "sspan/dtype.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define SSPAN_CPU_AVX2 1
#endif

namespace sspan::cpu {

#ifdef SSPAN_CPU_AVX2
inline float hsum(__m256 s) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}
#else
inline float hsum(const float (&a)[8], const float (&b)[8]) {
  float s[8];
  for (int j = 0; j < 8; ++j) s[j] = a[j] + b[j];
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}
#endif

struct F32Row {
  const float* p;
#ifdef SSPAN_CPU_AVX2
  __m256 load8(int64_t i) const { return _mm256_loadu_ps(p + i); }
#endif
  float load1(int64_t i) const { return p[i]; }
};

struct F16Row {
  const uint16_t* p;
#ifdef SSPAN_CPU_AVX2
  __m256 load8(int64_t i) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
  }
#endif
  float load1(int64_t i) const { return half_to_float(p[i]); }
};

struct BF16Row {
  const uint16_t* p;
#ifdef SSPAN_CPU_AVX2
  __m256 load8(int64_t i) const {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
#endif
  float load1(int64_t i) const { return bf16_to_float(p[i]); }
};

// sum_i row[i] * x[i] in a fixed association order: two 8-lane accumulators over
// 16-element chunks, an 8-element remainder into the first, a horizontal sum, then a
// scalar fma tail.
template <class Row>
inline float dot(const Row& row, const float* x, int64_t K) {
  int64_t i = 0;
#ifdef SSPAN_CPU_AVX2
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (; i + 16 <= K; i += 16) {
    a0 = _mm256_fmadd_ps(row.load8(i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(row.load8(i + 8), _mm256_loadu_ps(x + i + 8), a1);
  }
  for (; i + 8 <= K; i += 8) a0 = _mm256_fmadd_ps(row.load8(i), _mm256_loadu_ps(x + i), a0);
  float acc = hsum(_mm256_add_ps(a0, a1));
#else
  float lanes[2][8] = {};
  for (; i + 16 <= K; i += 16)
    for (int a = 0; a < 2; ++a)
      for (int j = 0; j < 8; ++j) lanes[a][j] = std::fma(row.load1(i + 8 * a + j), x[i + 8 * a + j], lanes[a][j]);
  for (; i + 8 <= K; i += 8)
    for (int j = 0; j < 8; ++j) lanes[0][j] = std::fma(row.load1(i + j), x[i + j], lanes[0][j]);
  float acc = hsum(lanes[0], lanes[1]);
#endif
  float tail = 0.f;  // explicit fma: the same rounding whatever the compiler contracts
  for (; i < K; ++i) tail = std::fma(row.load1(i), x[i], tail);
  return acc + tail;
}

// to_f32 (bulk conversion to fp32) lives in common/convert.h; the matmul calls it unqualified.
using sspan::to_f32;

}  // namespace sspan::cpu
