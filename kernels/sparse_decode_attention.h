#pragma once
// Block-sparse decode attention: for every query row, softmax(q . k / sqrt(D)) . v over
// exactly the row's attended positions: the set bits of its listed blocks (all before
// tail_start) plus every position of the dense tail [tail_start, pos]. A dense row lists
// no blocks and has tail_start = 0, so dense decode is the same kernel with a full span.
#include <cstdint>

#include <cuda_runtime.h>

#include "sspan/dtype.h"

namespace sspan::kernels {

// Tokens per work item: a 32-token sub-tile of a listed block (one mask word), a whole
// 16-token block, or a 32-token chunk of the dense tail.
inline constexpr int kDecodeTileTokens = 32;
// Warps per CTA; each warp walks its own items with a private cp.async ring.
inline constexpr int kDecodeWarps = 4;
// Largest GQA group (query heads per KV head) one CTA serves.
inline constexpr int kDecodeMaxGroup = 8;

struct SparseDecodeParams {
  const void* q = nullptr;        // [rows, Hq, D] at q + r * q_row_stride + h * D
  const void* k_cache = nullptr;  // this layer's keys [S][Hkv][C][D] (strides below)
  const void* v_cache = nullptr;  // this layer's values, same layout and strides as keys
  int64_t q_row_stride = 0;       // elements between query rows (Hq * D when packed)
  int64_t cache_slot_stride = 0;  // elements between slots (Hkv * C * D)
  int64_t cache_head_stride = 0;  // elements between KV heads (C * D); tokens are D apart
  int max_ctx = 0;                // C: positions >= C are never read

  const int32_t* slot = nullptr;        // [rows] KV-cache slot of each row
  const int32_t* indptr = nullptr;      // [rows + 1] CSR offsets into the block list
  const int32_t* block_ids = nullptr;   // [nnz], entry i at block_ids[i * block_id_stride]
  const uint32_t* masks = nullptr;      // [nnz][W], word w of entry i at masks[i * mask_stride + w]
  int block_id_stride = 1;              // 1 for a packed id array
  int mask_stride = 1;                  // W for a packed mask array
  const int32_t* tail_start = nullptr;  // [rows] first position of the dense tail
  const int32_t* pos = nullptr;         // [rows] query position t (the tail ends at t, inclusive)

  void* out = nullptr;             // [rows, Hq, D] at out + r * out_row_stride + h * D
  int64_t out_row_stride = 0;      // elements between output rows
  float* part_o = nullptr;         // [rows, Hq, splits, D] split states, normalised (splits > 1)
  float* part_m = nullptr;         // [rows, Hq, splits] split max of scaled scores, log2 units
  float* part_d = nullptr;         // [rows, Hq, splits] split sum of exp2(score - m)

  int rows = 0;
  int q_heads = 0;    // Hq
  int kv_heads = 0;   // Hkv; Hq / Hkv <= kDecodeMaxGroup
  int head_dim = 0;   // D: 64 or 128
  int block_size = 64;  // B: 16, 32, 64, 128 or 256
  int splits = 1;     // KV splits per (row, kv head): grid width, fixed for a captured graph
  float scale = 0.f;  // 1 / sqrt(D)
};

// Split count that fills the device for `rows` rows: about two CTAs per SM, capped at
// `max_splits` (the capacity of the split-state buffers).
int choose_decode_splits(int rows, int kv_heads, int sm_count, int max_splits);

// Floats needed by part_o for `rows` rows at `splits` splits (part_m/part_d need 1/D of it).
inline int64_t decode_split_state_floats(int rows, int q_heads, int splits, int head_dim) {
  return splits > 1 ? int64_t(rows) * q_heads * splits * head_dim : 0;
}

// Launch on `stream`: the attention kernel, then (splits > 1) the merge kernel. Checks the
// parameters and throws sspan::Error on bad shapes or launch errors. Reads no host memory
// that changes per step, so it may be captured into a CUDA graph.
void launch_sparse_decode_attention(const SparseDecodeParams& p, DType dtype, cudaStream_t stream);

}  // namespace sspan::kernels
