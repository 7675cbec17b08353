#pragma once
// Warp-level tensor-core helpers (sm_80+): ldmatrix from shared memory and
// mma.sync.m16n8k16 with fp32 accumulation, for fp16 and bf16 operands.
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), with g = lane / 4 and
// t = lane % 4; each 32-bit register holds two consecutive elements along k (A, B) or n (C):
//   A 16x16 (row): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B 16x8 (col):  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C 16x8:        c0, c1 = (g, 2t), (g, 2t+1); c2, c3 = (g+8, 2t), (g+8, 2t+1)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace sspan::kernels {

// Four 8x8 matrices of 16-bit elements; lane l gives the address of row l % 8 of matrix
// l / 8 (16 bytes, 16-byte aligned). Register i gets matrix i's (g, 2t..2t+1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// As ldmatrix_x4, each matrix transposed: register i gets matrix i's (2t..2t+1, g).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// c += A . B for one m16n8k16 tile whose A rows 8-15 are zero (a1 = a3 = 0): only c0, c1
// (row g) are kept; rows g + 8 are discarded (written to registers nobody reads).
#pragma nv_diag_suppress 550
template <class T>
__device__ __forceinline__ void mma_m16n8k16_top(float (&c)[2], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma_m16n8k16_top<__half>(float (&c)[2], uint32_t a0, uint32_t a2, uint32_t b0,
                                                         uint32_t b1) {
  float unused0, unused1;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(c[0]), "=f"(c[1]), "=f"(unused0), "=f"(unused1)
      : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]), "f"(0.f), "f"(0.f));
}

template <>
__device__ __forceinline__ void mma_m16n8k16_top<__nv_bfloat16>(float (&c)[2], uint32_t a0, uint32_t a2,
                                                                uint32_t b0, uint32_t b1) {
  float unused0, unused1;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(c[0]), "=f"(c[1]), "=f"(unused0), "=f"(unused1)
      : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]), "f"(0.f), "f"(0.f));
}

#pragma nv_diag_default 550

// Two floats rounded to T and packed (lo in the low half); lo_r/hi_r get the rounded values.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi, float& lo_r, float& hi_r);

template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi, float& lo_r, float& hi_r) {
  const __half2 h = __floats2half2_rn(lo, hi);
  lo_r = __low2float(h);
  hi_r = __high2float(h);
  return *reinterpret_cast<const uint32_t*>(&h);
}

template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi, float& lo_r, float& hi_r) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  lo_r = __low2float(h);
  hi_r = __high2float(h);
  return *reinterpret_cast<const uint32_t*>(&h);
}

}  // namespace sspan::kernels
