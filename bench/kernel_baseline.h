#pragma once
// The naive attention baseline of the kernel sweep, as HF transformers runs decode
// attention (SDPA's math path with GQA): a batched cuBLAS GEMM for q . K^T over the whole
// context (the G query heads of a KV head as G columns), a softmax kernel with the span as
// an additive mask, and a batched GEMM for P . V. It reads every cached position whatever
// the span.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "sspan/dtype.h"

namespace sspan::bench {

struct BaselineAttention {
  const void* q = nullptr;        // [rows, Hq, D]
  const void* k_cache = nullptr;  // [rows][Hkv][C][D]: row r uses slot r
  const void* v_cache = nullptr;  // same layout
  const uint8_t* mask = nullptr;  // [rows, L]: 1 where the position is attended
  void* scores = nullptr;         // [rows, Hq, L] scratch in the activation dtype
  void* out = nullptr;            // [rows, Hq, D]
  int rows = 0, q_heads = 0, kv_heads = 0, head_dim = 0, max_ctx = 0;
  int length = 0;                 // L: positions [0, L) of each row's context
};

void run_baseline_attention(const BaselineAttention& a, DType dtype, cublasHandle_t handle, cudaStream_t stream);

}  // namespace sspan::bench
