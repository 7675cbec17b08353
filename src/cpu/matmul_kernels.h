#pragma once
// Register-tiled micro-kernels of the CPU matmul (matmul.cpp splits a matmul into blocks
// and threads; a kernel computes one block).
//
// Every kernel set computes each output y = x . w (fp32 x, fp32/fp16/bf16 w) in one fixed
// order, the one the scalar set spells out:
//   lane j in 0..7 accumulates x[k] * w[k] for k = j, j + 8, ... below K8 = K - K % 8 with
//     fused multiply-adds in ascending k, starting from +0;
//   s = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7));
//   t = fused multiply-adds over k in [K8, K), starting from +0;   y = s + t.
// So the sets agree bit for bit, and an output never depends on how many rows are computed
// together, where it falls in a tile, or which thread computes it: prefill and decode agree.
//
// Weights are row-major, or packed for a kernel set that reads them faster that way
// (MatmulKernels::pack_rows = G > 0: 8 for AVX-512, 3 for AVX2; the CPU backend packs
// every matmul weight at load): rows in groups of G, the last group padded with zero rows;
// group g (G * K values from g * G * K) holds, for each 8-column chunk c < K8 / 8, the G
// rows' columns 8c..8c+7 one row after another, then each row's K - K8 tail columns. A
// tile then reads its G rows as one sequential stream, and batch-1 decode runs several
// accumulation chains at once instead of one; the order above, and so every bit, is kept.
#include <cstdint>
#include <vector>

#include "sspan/dtype.h"

namespace sspan::cpu {

// y[i * ldy + o] = sum_k x[i * ldx + k] * w[o * ldw + k] for i < m, o < n, k < K.
// w is stored in the kernel's weight dtype; ldw counts its elements. A packed kernel reads
// w as whole groups of packed rows (from a group's start, ldw = K).
struct MatmulBlock {
  const float* x = nullptr;
  int64_t ldx = 0;
  const void* w = nullptr;
  int64_t ldw = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  int64_t m = 0, n = 0, K = 0;
};

using MatmulBlockFn = void (*)(const MatmulBlock&);

// The kernels of one instruction set, one per weight dtype.
struct MatmulKernels {
  const char* isa;                // "avx512", "avx2" or "scalar"
  int mr, nr;                     // register tile: x rows by weight rows
  MatmulBlockFn f32, f16, bf16;   // row-major weights
  int pack_rows = 0;              // G of the packed layout this set reads; 0: none
  MatmulBlockFn packed_f32 = nullptr, packed_f16 = nullptr, packed_bf16 = nullptr;

  MatmulBlockFn for_dtype(DType dtype, bool packed = false) const {
    if (packed) return dtype == DType::F16 ? packed_f16 : dtype == DType::BF16 ? packed_bf16 : packed_f32;
    return dtype == DType::F16 ? f16 : dtype == DType::BF16 ? bf16 : f32;
  }
};

const MatmulKernels& scalar_matmul_kernels();  // matmul_scalar.cpp: the reference
const MatmulKernels* avx2_matmul_kernels();    // matmul_avx2.cpp: nullptr where not built
const MatmulKernels* avx512_matmul_kernels();  // matmul_avx512.cpp: nullptr where not built

// The sets this CPU can run, fastest first (the scalar set is always last); SSPAN_CPU_ISA
// caps them as it caps the attention kernels (cpu_isa.h).
std::vector<const MatmulKernels*> runnable_matmul_kernels();
// The set the matmul uses: the fastest runnable one, chosen once at first use.
const MatmulKernels& matmul_kernels();

}  // namespace sspan::cpu
