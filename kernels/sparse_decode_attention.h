#pragma once
// Block-sparse decode attention: for every query row, softmax(q . k / sqrt(D)) . v over
// exactly the row's attended positions: the set bits of its listed blocks (all before
// tail_start) plus every position of the dense tail [tail_start, pos]. A dense row lists
// no blocks and has tail_start = 0, so dense decode is the same kernel with a full span.
// A row may instead have one span per (layer, KV head) (head_first), and the kernel keeps
// the scores of the rows whose attention mass is recorded (mass_record; the mass itself
// comes from kernels/attention_record.h once the softmax normaliser is known).
// The launch configuration (warps, math, splits) is chosen on the host by
// src/cuda/kernel_config.h; the shared-memory layout is defined there too.
#include <cstdint>

#include <cuda_runtime.h>

#include "cuda/kernel_config.h"
#include "sspan/dtype.h"

namespace sspan::kernels {

using cuda::DecodeMath;
using cuda::kDecodeMaxGroup;
using cuda::kDecodeTileTokens;

struct SparseDecodeParams {
  const void* q = nullptr;        // [step rows, Hq, D] at q + r * q_row_stride + h * D
  const void* k_cache = nullptr;  // this layer's keys [S][Hkv][C][D] (strides below)
  const void* v_cache = nullptr;  // this layer's values, same layout and strides as keys
  int64_t q_row_stride = 0;       // elements between query rows (Hq * D when packed)
  int64_t cache_slot_stride = 0;  // elements between slots (Hkv * C * D)
  int64_t cache_head_stride = 0;  // elements between KV heads (C * D); tokens are D apart
  int max_ctx = 0;                // C: positions >= C are never read

  // The rows this launch serves: row_ids[i] for i < rows, or rows 0 .. rows-1 when null.
  // Every per-row array below is indexed by that step row.
  const int32_t* row_ids = nullptr;     // [rows]
  const int32_t* slot = nullptr;        // [step rows] KV-cache slot of each row
  const int32_t* indptr = nullptr;      // [span rows + 1] CSR offsets into the block list
  const int32_t* block_ids = nullptr;   // [nnz], entry i at block_ids[i * block_id_stride]
  const uint32_t* masks = nullptr;      // [nnz][W], word w of entry i at masks[i * mask_stride + w]
  int block_id_stride = 1;              // 1 for a packed id array
  int mask_stride = 1;                  // W for a packed mask array
  const int32_t* tail_start = nullptr;  // [span rows] first position of the dense tail
  const int32_t* pos = nullptr;         // [step rows] query position t (the tail ends at t, inclusive)
  // Span rows: indptr and tail_start are indexed by a span row, which is the step row r
  // unless head_first[r] >= 0: then (layer, KV head h) of row r reads span row
  // head_first[r] + layer * Hkv + h (rows [layer][kv head], each ending at pos[r]).
  const int32_t* head_first = nullptr;  // [step rows] or null: every row is its own span row
  int layer = 0;                        // the layer this launch serves

  // Scores of recorded rows: mass_record[r] = i >= 0 keeps, for query head h and position
  // j of row r's attended set, q . k_j / sqrt(D) * log2(e) at raw_scores[(i * Hq + h) *
  // raw_stride + j], and log2 of the row's softmax normaliser (final max + log2 of the
  // sum of exp2(score - max)) at score_lse[i * Hq + h].
  const int32_t* mass_record = nullptr;  // [step rows] or null: nothing recorded
  float* raw_scores = nullptr;           // [records][Hq][raw_stride]
  int64_t raw_stride = 0;                // >= the position after the last recorded one
  float* score_lse = nullptr;            // [records][Hq]

  void* out = nullptr;             // [step rows, Hq, D] at out + r * out_row_stride + h * D
  int64_t out_row_stride = 0;      // elements between output rows
  float* part_o = nullptr;         // [rows, Hq, splits, D] split states, normalised (splits > 1)
  float* part_m = nullptr;         // [rows, Hq, splits] split max of scaled scores, log2 units
  float* part_d = nullptr;         // [rows, Hq, splits] split sum of exp2(score - m)

  int rows = 0;       // rows served (the grid is rows * Hkv by splits)
  int q_heads = 0;    // Hq
  int kv_heads = 0;   // Hkv; Hq / Hkv <= kDecodeMaxGroup
  int head_dim = 0;   // D: one of cuda::kHeadDims
  int block_size = 64;  // B: 16, 32, 64, 128 or 256
  int splits = 1;     // KV splits per (row, kv head): grid height, fixed for a captured graph
  float scale = 0.f;  // 1 / sqrt(D)
  int warps = 4;      // warps per CTA: 2 or 4 (cuda::choose_decode_warps)
  DecodeMath math = DecodeMath::Scalar;  // how a tile is computed (cuda::choose_decode_math)
};

// Floats needed by part_o for `rows` rows at `splits` splits (part_m/part_d need 1/D of it).
inline int64_t decode_split_state_floats(int rows, int q_heads, int splits, int head_dim) {
  return splits > 1 ? int64_t(rows) * q_heads * splits * head_dim : 0;
}

// Launch on `stream`: the attention kernel, then (splits > 1) the merge kernel. Checks the
// parameters and throws sspan::Error on bad shapes or launch errors; raises the kernel's
// shared-memory limit once per device. Reads no host memory that changes per step, so it
// may be captured into a CUDA graph.
void launch_sparse_decode_attention(const SparseDecodeParams& p, DType dtype, cudaStream_t stream);

// CTAs per SM the current device runs at once for `warps` warps at `head_dim`, the
// fewest over every group size and math (the occupancy API: shared memory, registers,
// threads). Input of the split choice.
int sparse_decode_ctas_per_sm(DType dtype, int head_dim, int warps);

}  // namespace sspan::kernels
