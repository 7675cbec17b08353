#pragma once
// Launchers of the forward pass's small kernels. Tensors are row-major device arrays in
// `dtype` (F16 or BF16 unless stated); per-step metadata (tokens, pos, slot, rows) are
// device int32 arrays uploaded by set_step. Every launcher checks the launch and throws
// sspan::Error on failure.
#include <cstdint>

#include <cuda_runtime.h>

#include "sspan/dtype.h"

namespace sspan::kernels {

// out[n, H] = table[tokens[i], :]; table [V, H]. Tokens are validated on the host.
void launch_embedding(DType dtype, const void* table, const int32_t* tokens, void* out, int n, int hidden,
                      cudaStream_t stream);

// out[n, H] = x / sqrt(mean(x^2) + eps) * w, fp32 accumulation; w [H] in w_dtype (F32,
// as the model keeps norm weights, or the activation dtype). out may alias x.
void launch_rms_norm(DType dtype, const void* x, DType w_dtype, const void* w, float eps, void* out, int n,
                     int hidden, cudaStream_t stream);

// In place on q[n, Hq, D] and k[n, Hkv, D]: HF rotate_half, pair (i, i + D/2),
// angle = pos[row] * inv_freq[i]; inv_freq [D/2] fp32.
void launch_rope(DType dtype, void* q, void* k, const float* inv_freq, const int32_t* pos, int n, int q_heads,
                 int kv_heads, int head_dim, cudaStream_t stream);

// k_cache/v_cache: one layer [S][Hkv][C][D] (slot_stride = Hkv*C*D, head_stride = C*D);
// cache[slot[i]][h][pos[i]] = k/v[i, h, :] for k, v [n, Hkv, D].
void launch_kv_append(DType dtype, const void* k, const void* v, void* k_cache, void* v_cache,
                      const int32_t* slot, const int32_t* pos, int n, int kv_heads, int head_dim,
                      int64_t slot_stride, int64_t head_stride, cudaStream_t stream);

// out[count] = silu(gate) * up, in fp32.
void launch_swiglu(DType dtype, const void* gate, const void* up, void* out, int64_t count, cudaStream_t stream);

// x[count] += y[count], in fp32.
void launch_add(DType dtype, void* x, const void* y, int64_t count, cudaStream_t stream);

// out[i, H] = x[rows[i], H] for i < n_out.
void launch_gather_rows(DType dtype, const void* x, const int32_t* rows, void* out, int n_out, int hidden,
                        cudaStream_t stream);

// out[count] (dst dtype) = x[count] (src dtype); any of F32, F16, BF16 each side.
void launch_convert(DType src_dtype, const void* x, DType dst_dtype, void* out, int64_t count,
                    cudaStream_t stream);

}  // namespace sspan::kernels
