// The HF-style baseline (see kernel_baseline.h).
#include "kernel_baseline.h"

#include <cmath>

#include "cuda/cuda_check.h"
#include "dtype_traits.cuh"

namespace sspan::bench {
namespace {

using kernels::from_float;
using kernels::to_float;

constexpr int kThreads = 256;

__device__ float block_reduce(float v, bool is_max, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, other) : v + other;
  }
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float r = is_max ? -INFINITY : 0.f;
  for (int i = 0; i < kThreads / 32; ++i) r = is_max ? fmaxf(r, scratch[i]) : r + scratch[i];
  __syncthreads();
  return r;
}

// One CTA per (row, head): P = softmax(S + mask), masked positions -> 0, in place.
template <class T>
__global__ void masked_softmax_kernel(T* scores, const uint8_t* mask, int heads, int length) {
  __shared__ float scratch[kThreads / 32];
  const int row = blockIdx.x / heads;
  T* s = scores + int64_t(blockIdx.x) * length;
  const uint8_t* m = mask + int64_t(row) * length;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < length; i += kThreads)
    if (m[i]) mx = fmaxf(mx, to_float(s[i]));
  mx = block_reduce(mx, true, scratch);
  float sum = 0.f;
  for (int i = threadIdx.x; i < length; i += kThreads)
    if (m[i]) sum += expf(to_float(s[i]) - mx);
  sum = block_reduce(sum, false, scratch);
  for (int i = threadIdx.x; i < length; i += kThreads)
    s[i] = from_float<T>(m[i] ? expf(to_float(s[i]) - mx) / sum : 0.f);
}

cudaDataType_t cuda_type(DType t) { return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_16F; }

}  // namespace

void run_baseline_attention(const BaselineAttention& a, DType dtype, cublasHandle_t handle, cudaStream_t stream) {
  SSPAN_CUBLAS_CHECK(cublasSetStream(handle, stream));
  const int group = a.q_heads / a.kv_heads;
  const int batch = a.rows * a.kv_heads;                          // one GEMM per (row, KV head)
  const int64_t cache_stride = int64_t(a.max_ctx) * a.head_dim;   // per (row, KV head)
  const int64_t q_stride = int64_t(group) * a.head_dim;           // the group's queries
  const int64_t s_stride = int64_t(group) * a.length;             // the group's scores
  const float scale = 1.f / std::sqrt(float(a.head_dim)), one = 1.f, zero = 0.f;
  const cudaDataType_t t = cuda_type(dtype);
  // Column-major S^T[L, G] = K[L, D] . Q^T[D, G] for every (row, KV head).
  SSPAN_CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, a.length, group, a.head_dim, &scale,
                                                a.k_cache, t, a.head_dim, cache_stride, a.q, t, a.head_dim, q_stride,
                                                &zero, a.scores, t, a.length, s_stride, batch, CUBLAS_COMPUTE_32F,
                                                CUBLAS_GEMM_DEFAULT));
  kernels::dispatch_half_types(dtype, "baseline softmax", [&](auto tag) {
    using T = decltype(tag);
    masked_softmax_kernel<T><<<unsigned(a.rows * a.q_heads), kThreads, 0, stream>>>(static_cast<T*>(a.scores), a.mask,
                                                                                  a.q_heads, a.length);
  });
  SSPAN_CUDA_CHECK_LAUNCH("masked_softmax_kernel");
  // Column-major out^T[D, G] = V^T[D, L] . P^T[L, G].
  SSPAN_CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, a.head_dim, group, a.length, &one,
                                                a.v_cache, t, a.head_dim, cache_stride, a.scores, t, a.length,
                                                s_stride, &zero, a.out, t, a.head_dim, q_stride, batch,
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace sspan::bench
