#include "sspan/dtype.h"

#include <cmath>

namespace sspan {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}

bool parse_dtype(std::string_view s, DType* out) {
  if (s == "F32" || s == "float32" || s == "fp32" || s == "f32") { *out = DType::F32; return true; }
  if (s == "F16" || s == "float16" || s == "fp16" || s == "f16" || s == "half") { *out = DType::F16; return true; }
  if (s == "BF16" || s == "bfloat16" || s == "bf16") { *out = DType::BF16; return true; }
  return false;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: value = man * 2^-24
      float f = std::ldexp(float(man), -24);
      std::memcpy(&u, &f, 4);
      u |= sign;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 112u) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return sign | 0x7e00u;               // NaN
  if (u >= 0x477ff000u) return sign | 0x7c00u;              // overflow -> inf
  if (u < 0x38800000u) {                                    // subnormal or zero
    float a;
    std::memcpy(&a, &u, 4);
    return sign | uint16_t(std::nearbyint(a * 16777216.0f));  // a / 2^-24, ties to even
  }
  uint32_t mant_round = u + 0xfffu + ((u >> 13) & 1u);      // round to nearest even
  return sign | uint16_t(((mant_round >> 13) - (112u << 10)) & 0x7fffu);
}

}  // namespace sspan
