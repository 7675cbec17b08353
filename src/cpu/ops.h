#pragma once
// CPU reference ops: fp32 math with fp32 accumulation over fp32/fp16/bf16 weights,
// threaded with the pool in thread_pool.h. Every CUDA kernel is checked against these. Each function's
// result for one row depends only on that row's inputs (never on how many rows are
// processed together), so prefill and step-by-step decode agree exactly.
#include <cstdint>

#include "sspan/dtype.h"
#include "sspan/span.h"

namespace sspan::cpu {

// A matrix of weights in its stored dtype: rows x cols, row-major, `data` unaligned ok.
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
};

// y[n, W.rows] = x[n, W.cols] . W^T, each output in the fixed order of matmul_kernels.h
// (the same for every n and every kernel set).
void matmul(const float* x, const WeightView& w, float* y, int n);

// out[n, H] = table[ids[i], :] (converted to fp32)
void embedding(const WeightView& table, const int32_t* ids, float* out, int n);

// out[n, H] = x * rsqrt(mean(x^2) + eps) * w     (HF LlamaRMSNorm)
void rms_norm(const float* x, const float* w, float eps, float* out, int n, int H);

// In place: x[n, heads, D] rotated as HF rotate_half: (x_i, x_{i+D/2}) by angle
// pos[r] * inv_freq[i].
void rope(float* x, const int32_t* pos, const float* inv_freq, int n, int heads, int D);

// out[n*I] = silu(gate) * up
void swiglu(const float* gate, const float* up, float* out, int64_t count);

// x += y
void add(float* x, const float* y, int64_t count);

// Keys and values of one layer in the KV cache: [slots][Hkv][C][D], fp32.
struct KvLayerView {
  const float* k = nullptr;
  const float* v = nullptr;
  int slots = 0, kv_heads = 0, max_ctx = 0, head_dim = 0;
  const float* k_row(int slot, int h, int p) const {
    return k + ((int64_t(slot) * kv_heads + h) * max_ctx + p) * head_dim;
  }
  const float* v_row(int slot, int h, int p) const {
    return v + ((int64_t(slot) * kv_heads + h) * max_ctx + p) * head_dim;
  }
};

// out[n, Hq, D] = softmax over the row's span of (q . k / sqrt(D)) times V.
// Row r reads slot[r]'s cache through span row r: the set bits of its listed blocks
// (16-token sub-tiles whose bits are all zero are skipped) and then the dense tail
// [tail_start[r], pos[r]]. Online softmax in fp32, positions in ascending order.
void span_attention(const float* q, const KvLayerView& kv, const int32_t* slot, const SpanBatch& span,
                    float* out, int n, int q_heads);

}  // namespace sspan::cpu
