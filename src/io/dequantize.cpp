#include "io/dequantize.h"

#include <cstring>

#include "common/check.h"
#include "sspan/dtype.h"

namespace sspan {
namespace {

uint16_t load_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

bool can_dequantize(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::Q8_0 ||
         t == GgmlType::Q4_0 || t == GgmlType::Q4_1;
}

void dequantize_row(GgmlType type, const std::byte* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load_u16(src + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(src + 2 * i));
      return;
    case GgmlType::Q8_0:
      for (int64_t b = 0; b < n / 32; ++b, src += 34, dst += 32) {
        const float d = half_to_float(load_u16(src));
        for (int j = 0; j < 32; ++j) dst[j] = d * float(static_cast<int8_t>(src[2 + j]));
      }
      return;
    case GgmlType::Q4_0:
      for (int64_t b = 0; b < n / 32; ++b, src += 18, dst += 32) {
        const float d = half_to_float(load_u16(src));
        for (int j = 0; j < 16; ++j) {
          const auto q = static_cast<uint8_t>(src[2 + j]);
          dst[j] = d * float(int(q & 0x0F) - 8);
          dst[j + 16] = d * float(int(q >> 4) - 8);
        }
      }
      return;
    case GgmlType::Q4_1:
      for (int64_t b = 0; b < n / 32; ++b, src += 20, dst += 32) {
        const float d = half_to_float(load_u16(src));
        const float m = half_to_float(load_u16(src + 2));
        for (int j = 0; j < 16; ++j) {
          const auto q = static_cast<uint8_t>(src[4 + j]);
          dst[j] = d * float(q & 0x0F) + m;
          dst[j + 16] = d * float(q >> 4) + m;
        }
      }
      return;
    default: break;
  }
  SSPAN_FAIL("cannot dequantize ggml type {}", ggml_type_name(type));
}

}  // namespace sspan
