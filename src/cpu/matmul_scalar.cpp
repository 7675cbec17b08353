// The reference matmul kernels: plain C++ spelling out the order every kernel set follows
// (see matmul_kernels.h), one output at a time. Runs on any CPU.
#include <cmath>
#include <cstddef>

#include "cpu/matmul_kernels.h"

namespace sspan::cpu {
namespace {

// Element k of a weight row stored as D, in fp32 (exact for every dtype).
template <DType D>
float load(const void* row, int64_t k) {
  if constexpr (D == DType::F32) return static_cast<const float*>(row)[k];
  else if constexpr (D == DType::F16) return half_to_float(static_cast<const uint16_t*>(row)[k]);
  else return bf16_to_float(static_cast<const uint16_t*>(row)[k]);
}

template <DType D>
void block(const MatmulBlock& b) {
  const auto* w = static_cast<const std::byte*>(b.w);
  const int64_t K8 = b.K - b.K % 8;
  for (int64_t i = 0; i < b.m; ++i) {
    const float* x = b.x + i * b.ldx;
    for (int64_t o = 0; o < b.n; ++o) {
      const void* wo = w + size_t(o * b.ldw) * dtype_size(D);
      float l[8] = {};
      for (int64_t k = 0; k < K8; k += 8)
        for (int j = 0; j < 8; ++j) l[j] = std::fma(x[k + j], load<D>(wo, k + j), l[j]);
      const float s = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
      float t = 0.f;
      for (int64_t k = K8; k < b.K; ++k) t = std::fma(x[k], load<D>(wo, k), t);
      b.y[i * b.ldy + o] = s + t;
    }
  }
}

}  // namespace

const MatmulKernels& scalar_matmul_kernels() {
  static const MatmulKernels k{"scalar", 1, 1, block<DType::F32>, block<DType::F16>, block<DType::BF16>};
  return k;
}

}  // namespace sspan::cpu
