#pragma once
// What the attention op records for span policies that learn from it (`recycled`): the
// attention mass of the recorded rows, finished from the scores the decode kernel kept
// (sparse_decode_attention.h: raw_scores, score_lse), the top-k keys of that mass, and
// the last layer's query averaged over the heads. The CPU op computes the same (src/cpu/span_attention.h, AttentionMass;
// src/cpu/cpu_backend.cpp, keep_queries). Every launcher checks its launch and throws
// sspan::Error on failure; none reads host memory that changes per step, so each may be
// captured into a CUDA graph.
#include <cstdint>

#include <cuda_runtime.h>

#include "sspan/dtype.h"

namespace sspan::kernels {

struct AttentionMassParams {
  const int32_t* mass_rows = nullptr;  // [records] step row of each record
  const int32_t* pos = nullptr;        // [step rows] position t: record i has keys [0, t]
  const float* raw_scores = nullptr;   // [records][Hq][raw_stride] from the decode kernel
  int64_t raw_stride = 0;
  const float* score_lse = nullptr;    // [records][Hq] from the decode kernel
  // mass[((i * layers + layer) * Hkv + h) * mass_stride + j] = sum over the G query heads
  // g of KV head h of exp2(raw - lse): the softmax probability of key j summed over the group.
  float* mass = nullptr;               // [records][layers][Hkv][mass_stride]
  int64_t mass_stride = 0;             // >= t + 1 of every record
  int records = 0, layers = 0, layer = 0, q_heads = 0, kv_heads = 0;
  int max_keys = 0;  // C: fixes the grid (the keys of a record are read on the device)
};
void launch_attention_mass(const AttentionMassParams& p, cudaStream_t stream);

// Per (layer, KV head) of one record, the k keys of highest mass (of equal masses the
// earlier key, as span_detail::top_k_keys), ascending: an exact radix select on the key
// (mass bits, then the position reversed, so every key is distinct) over 8 passes of one
// byte, then an ordered compaction. One CTA per (layer, KV head).
struct AttentionTopKParams {
  const float* mass = nullptr;  // [records][layers][Hkv][mass_stride], as attention mass writes it
  int64_t mass_stride = 0;
  int record = 0, layers = 0, kv_heads = 0;
  int keys = 0;                 // t + 1 of the record
  int k = 0;                    // 1 <= k <= keys
  int32_t* out = nullptr;       // [layers][Hkv][k]
};
void launch_attention_top_k(const AttentionTopKParams& p, cudaStream_t stream);

// out[i][d] = sum over heads h of q[rows[i]][h][d] / Hq, in fp32, heads in order (as the
// CPU backend sums them); q [step rows, Hq, D] in `dtype` at q + r * q_row_stride.
void launch_query_mean(DType dtype, const void* q, int64_t q_row_stride, const int32_t* rows, int n_rows,
                       int q_heads, int head_dim, float* out, cudaStream_t stream);

}  // namespace sspan::kernels
