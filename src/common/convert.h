#pragma once
// Bulk conversion of stored fp32/fp16/bf16 elements to fp32: used by the model loader
// (norm weights) and by the CPU backend (weight tiles, embedding rows). Lives here so the
// forward pass needs no backend header.
#include <cstdint>
#include <cstring>

#include "sspan/dtype.h"

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#endif

namespace sspan {

// dst[0, count) = src[0, count) converted from `dtype` to fp32 (exact for every input).
inline void to_f32(const void* src, DType dtype, int64_t count, float* dst) {
  if (dtype == DType::F32) {
    std::memcpy(dst, src, size_t(count) * 4);
    return;
  }
  const auto* s = static_cast<const uint16_t*>(src);
  if (dtype == DType::F16) {
    int64_t i = 0;
#if defined(__F16C__) && defined(__AVX__)
    for (; i + 8 <= count; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#endif
    for (; i < count; ++i) dst[i] = half_to_float(s[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) dst[i] = bf16_to_float(s[i]);
  }
}

}  // namespace sspan
