#pragma once
// Dot products of an fp32 vector with a weight row stored as fp32, fp16 or bf16.
// The fused (convert while reading) and the buffered (convert first, then dot in fp32)
// forms execute the same sequence of fp32 operations, so they give identical results:
// the matmul may choose either form depending on the number of rows without changing
// any output bit.
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
// scalar fma tail. dot4 below performs exactly these operations for each of its pairs.
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

// out[j] = dot(row, x[j], K) for four vectors at once, bit-identical to four dot() calls:
// one weight load feeds four FMAs, which is what makes several-row matmuls fast.
template <class Row>
inline void dot4(const Row& row, const float* const x[4], int64_t K, float out[4]) {
  int64_t i = 0;
#ifdef SSPAN_CPU_AVX2
  __m256 a0[4], a1[4];
  for (int j = 0; j < 4; ++j) a0[j] = a1[j] = _mm256_setzero_ps();
  for (; i + 16 <= K; i += 16) {
    const __m256 w0 = row.load8(i), w1 = row.load8(i + 8);
    for (int j = 0; j < 4; ++j) {
      a0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[j] + i), a0[j]);
      a1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[j] + i + 8), a1[j]);
    }
  }
  for (; i + 8 <= K; i += 8) {
    const __m256 w0 = row.load8(i);
    for (int j = 0; j < 4; ++j) a0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[j] + i), a0[j]);
  }
  for (int j = 0; j < 4; ++j) out[j] = hsum(_mm256_add_ps(a0[j], a1[j]));
#else
  for (int j = 0; j < 4; ++j) {
    float lanes[2][8] = {};
    int64_t k = 0;
    for (; k + 16 <= K; k += 16)
      for (int a = 0; a < 2; ++a)
        for (int l = 0; l < 8; ++l) lanes[a][l] = std::fma(row.load1(k + 8 * a + l), x[j][k + 8 * a + l], lanes[a][l]);
    for (; k + 8 <= K; k += 8)
      for (int l = 0; l < 8; ++l) lanes[0][l] = std::fma(row.load1(k + l), x[j][k + l], lanes[0][l]);
    out[j] = hsum(lanes[0], lanes[1]);
    i = k;
  }
#endif
  for (int j = 0; j < 4; ++j) {
    float tail = 0.f;
    for (int64_t k = i; k < K; ++k) tail = std::fma(row.load1(k), x[j][k], tail);
    out[j] += tail;
  }
}

// to_f32 (bulk conversion to fp32) lives in common/convert.h; the matmul calls it unqualified.
using sspan::to_f32;

}  // namespace sspan::cpu
