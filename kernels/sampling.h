#pragma once
// Token selection on the device from fp32 logits [rows, V]: greedy (argmax) and
// temperature / top-k / top-p sampling driven by one host-drawn uniform per row, so that
// a fixed seed gives the same tokens on every run.
//
// Allowed set of a row (ties at either cut are kept, so the set never depends on index
// order): K = { i : z_i >= z_(k) } with z_(k) the k-th largest logit (every i when
// top_k <= 0 or >= V); with w_i = exp((z_i - max z) / T) on K, the top-p cut keeps
// P = { i in K : w_i >= tau }, tau the largest value whose kept mass sum_{w_i >= tau} w_i
// reaches top_p * sum_K w_i (top_p >= 1 keeps K). The token is the first i of P, in index
// order, whose running sum of w passes u * sum_P w.
#include <cstdint>

#include <cuda_runtime.h>

namespace sspan::kernels {

struct SamplingParams {
  const float* logits = nullptr;    // [rows, V] fp32
  const float* uniforms = nullptr;  // [rows] in [0, 1), one per row
  int32_t* out = nullptr;           // [rows] chosen token ids
  int rows = 0;
  int vocab = 0;
  float temperature = 1.f;  // > 0
  int top_k = 0;            // <= 0: off
  float top_p = 1.f;        // in (0, 1); >= 1: off; <= 0 or NaN is an error
};

// The id written for a row that holds NaN or an infinity: no choice over it is meaningful
// and the caller reports the row (both selections check every logit).
inline constexpr int32_t kNonFiniteRow = -1;

// out[r] = the smallest i with logits[r, i] == max_j logits[r, j], or kNonFiniteRow.
void launch_argmax(const float* logits, int rows, int vocab, int32_t* out, cudaStream_t stream);

// Samples as described above, or writes kNonFiniteRow; temperature <= 0 (or so small that
// 1 / temperature overflows) falls back to argmax. Throws for a vocabulary <= 0 or a
// top_p <= 0 (no token could be kept), before anything is launched.
void launch_sample(const SamplingParams& p, cudaStream_t stream);

}  // namespace sspan::kernels
