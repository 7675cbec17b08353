// The span-attention chunk kernel on plain floats: the reference the vector kernels are
// tested against, and the path for CPUs without AVX2 (or head dims not a multiple of 8).
#include "cpu/attention_kernels.h"

namespace sspan::cpu::attn {
namespace {

struct Scalar {
  using V = float;
  static constexpr int W = 1;
  static V zero() { return 0.f; }
  static V set1(float x) { return x; }
  static V load(const float* p) { return *p; }
  static V load(const Half* p) { return half_to_float(p->bits); }
  static V load(const BHalf* p) { return bf16_to_float(p->bits); }
  static void store(float* p, V x) { *p = x; }
  static void store(Half* p, V x) { p->bits = float_to_half(x > 65504.f ? 65504.f : x < -65504.f ? -65504.f : x); }
  static void store(BHalf* p, V x) { p->bits = float_to_bf16(x); }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static V fma(V a, V b, V c) { return __builtin_fmaf(a, b, c); }
  static float hsum(V x) { return x; }
  static float hmax(V x) { return x; }
  static V exp2(V x) { return x < -126.f ? 0.f : __builtin_exp2f(x); }
};

#include "cpu/attention_tile.inc"

}  // namespace

void attend_chunk_scalar(const ChunkArgs& args) { attend_chunk<Scalar>(args); }

void store_kv_scalar(const float* src, void* dst, DType dtype, int64_t count) {
  store_kv_as<Scalar>(src, dst, dtype, count);
}

}  // namespace sspan::cpu::attn
