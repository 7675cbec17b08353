#pragma once
// Causal attention for dense prompt rows on tensor cores: FlashAttention-style, fp16/bf16
// operands, fp32 accumulation, online softmax. Rows come in tiles of up to kPrefillRows
// consecutive rows of one slot at consecutive positions (cuda::route_rows); row i attends
// to every cached position of its slot in [0, pos[i]].
#include <cstdint>

#include <cuda_runtime.h>

#include "cuda/kernel_config.h"
#include "sspan/dtype.h"

namespace sspan::kernels {

using cuda::kPrefillRows;  // query rows per CTA (16 per warp, 4 warps)

struct PrefillParams {
  const void* q = nullptr;        // [rows, Hq, D] at q + r * q_row_stride + h * D
  const void* k_cache = nullptr;  // this layer's keys [S][Hkv][C][D]
  const void* v_cache = nullptr;  // this layer's values, same layout
  void* out = nullptr;            // [rows, Hq, D] at out + r * out_row_stride + h * D
  int64_t q_row_stride = 0;
  int64_t out_row_stride = 0;
  int64_t cache_slot_stride = 0;  // Hkv * C * D
  int64_t cache_head_stride = 0;  // C * D
  const int32_t* slot = nullptr;  // [rows]
  const int32_t* pos = nullptr;   // [rows]
  const int32_t* tiles = nullptr; // [num_tiles][2]: first row, row count (<= kPrefillRows)
  int num_tiles = 0;
  int max_tile_rows = 0;          // longest tile, checked against kPrefillRows
  int q_heads = 0, kv_heads = 0;
  int head_dim = 0;               // one of cuda::kHeadDims
  float scale = 0.f;              // 1 / sqrt(D)
  int keys = 64;                  // keys per K/V tile: 64 or 32 (cuda::choose_prefill_keys)
};

// Launch on `stream`; checks the parameters and raises the kernel's shared-memory limit
// once per device. Throws sspan::Error on bad shapes or launch errors.
void launch_prefill_attention(const PrefillParams& p, DType dtype, cudaStream_t stream);

}  // namespace sspan::kernels
