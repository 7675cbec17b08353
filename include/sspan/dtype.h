#pragma once
// Element types of weights, activations and caches, and scalar conversions.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sspan {

enum class DType : uint8_t { F32, F16, BF16 };

constexpr size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
std::string_view dtype_name(DType t);          // "F32", "F16", "BF16" (safetensors spelling)
bool parse_dtype(std::string_view s, DType* out);  // accepts safetensors and torch spellings

// IEEE half <-> float, round-to-nearest-even; exact for every finite half.
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

inline float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t float_to_bf16(float f) {  // round-to-nearest-even, NaN kept quiet
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

}  // namespace sspan
