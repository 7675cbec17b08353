#pragma once
// ggml block formats dequantized to fp32, exactly as ggml and the Python gguf package
// compute them (fp16 scales widened to fp32, then one multiply, or multiply and add).
//   Q8_0: 32 values per 34-byte block: fp16 d, 32 x int8 q;        x = d * q
//   Q4_0: 32 values per 18-byte block: fp16 d, 16 bytes of nibbles; x = d * (q - 8)
//   Q4_1: 32 values per 20-byte block: fp16 d, fp16 m, 16 bytes;   x = d * q + m
// In a block, value j < 16 is the low nibble of byte j and value j + 16 its high nibble.
#include <cstddef>
#include <cstdint>

#include "io/gguf.h"

namespace sspan {

// Whether dequantize_row handles the type (F32, F16 and BF16 included).
bool can_dequantize(GgmlType type);

// n values (a whole number of blocks) of `type` at src into dst.
void dequantize_row(GgmlType type, const std::byte* src, float* dst, int64_t n);

}  // namespace sspan
