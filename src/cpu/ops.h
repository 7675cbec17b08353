#pragma once
// CPU reference ops: fp32 math with fp32 accumulation over fp32/fp16/bf16 weights,
// threaded with the pool in thread_pool.h. Every CUDA kernel is checked against these. Each function's
// result for one row depends only on that row's inputs (never on how many rows are
// processed together), so prefill and step-by-step decode agree exactly.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "cpu/span_attention.h"  // span_attention, the KV cache view
#include "sspan/dtype.h"

namespace sspan::cpu {

// A matrix of weights in its stored dtype: rows x cols, `data` unaligned ok. Row-major
// (group 0), or packed in groups of `group` rows for the matmul kernels (matmul_kernels.h).
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  int group = 0;
};

// A row-major weight in the layout the chosen matmul kernels read fastest: packed into new
// storage where they read packed weights (storage holds view.data), else w as it is.
struct MatmulWeight {
  std::shared_ptr<std::byte[]> storage;
  WeightView view;
};
MatmulWeight pack_for_matmul(const WeightView& w);
// w (row-major) packed in groups of `group` rows into dst, which holds
// packed_bytes(w, group).
size_t packed_bytes(const WeightView& w, int group);
void pack_weight(const WeightView& w, int group, std::byte* dst);

// y[n, W.rows] = x[n, W.cols] . W^T, each output in the fixed order of matmul_kernels.h
// (the same for every n and every kernel set).
void matmul(const float* x, const WeightView& w, float* y, int n);

// The same for projections that read one input (q, k and v; gate and up): y_i[n, w_i.rows]
// = x . w_i^T for each, as one parallel job over all their blocks, so the threads meet once
// rather than once per weight. Every output equals matmul's for its weight alone.
struct MatmulOutput {
  WeightView w;
  float* y = nullptr;
};
constexpr int kMaxMatmulOutputs = 4;
void matmul(const float* x, std::span<const MatmulOutput> outputs, int n);

// out[n, H] = table[ids[i], :] (converted to fp32), row-major or packed
void embedding(const WeightView& table, const int32_t* ids, float* out, int n);

// out[n, H] = x * rsqrt(mean(x^2) + eps) * w     (HF LlamaRMSNorm)
void rms_norm(const float* x, const float* w, float eps, float* out, int n, int H);

// The rotation angles of RoPE for n rows: cos_sin[n][2][D/2] holds cos, then sin, of
// pos[r] * inv_freq[i] (an fp32 product, as HF computes it). One table serves q and k of
// every layer of a step, so the sines and cosines are computed once per step.
void rope_table(const int32_t* pos, const float* inv_freq, int n, int D, float* cos_sin);

// In place: x[n, heads, D] rotated as HF rotate_half: (x_i, x_{i+D/2}) by row r's angle i
// from rope_table.
void rope(float* x, const float* cos_sin, int n, int heads, int D);

// out[n*I] = silu(gate) * up
void swiglu(const float* gate, const float* up, float* out, int64_t count);

// x += y
void add(float* x, const float* y, int64_t count);

}  // namespace sspan::cpu
