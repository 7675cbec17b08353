// The forward pass's small kernels: embedding, RMSNorm, RoPE, KV append, SwiGLU, residual
// add, row gather and dtype conversion. Memory-bound and simple: one thread per element
// (or per rotated pair), one CTA per row where a row reduction is needed.
#include "elementwise.h"

#include "cuda/cuda_check.h"
#include "dtype_traits.cuh"

namespace sspan::kernels {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t count) {
  const int64_t b = (count + kThreads - 1) / kThreads;
  return unsigned(b < 1 ? 1 : (b > 65535LL * 32 ? 65535LL * 32 : b));
}

template <class T>
__global__ void embedding_kernel(const T* table, const int32_t* tokens, T* out, int n, int hidden) {
  const int64_t total = int64_t(n) * hidden;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / hidden;
    out[e] = table[int64_t(tokens[row]) * hidden + e % hidden];
  }
}

// One CTA per row: block-wide sum of squares in fp32, then scale. Each thread rereads only
// the elements it writes, so out may alias x.
template <class T, class Wt>
__global__ void rms_norm_kernel(const T* x, const Wt* w, float eps, T* out, int hidden) {
  __shared__ float partial[kThreads / 32];
  const T* xr = x + int64_t(blockIdx.x) * hidden;
  T* outr = out + int64_t(blockIdx.x) * hidden;
  float ss = 0.f;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float v = to_float(xr[i]);
    ss += v * v;
  }
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = ss;
  __syncthreads();
  float total = 0.f;
  for (int i = 0; i < kThreads / 32; ++i) total += partial[i];
  const float inv = rsqrtf(total / float(hidden) + eps);
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) outr[i] = from_float<T>(to_float(xr[i]) * inv * to_float(w[i]));
}

// One thread per (row, head, i < D/2) over the q heads then the k heads.
template <class T>
__global__ void rope_kernel(T* q, T* k, const float* inv_freq, const int32_t* pos, int n, int q_heads,
                            int kv_heads, int head_dim) {
  const int half = head_dim / 2;
  const int heads = q_heads + kv_heads;
  const int64_t total = int64_t(n) * heads * half;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int i = int(e % half);
    const int h = int((e / half) % heads);
    const int64_t row = e / (int64_t(half) * heads);
    T* v = h < q_heads ? q + (row * q_heads + h) * head_dim : k + (row * kv_heads + (h - q_heads)) * head_dim;
    float s, c;
    sincosf(float(pos[row]) * inv_freq[i], &s, &c);
    const float x1 = to_float(v[i]);
    const float x2 = to_float(v[i + half]);
    v[i] = from_float<T>(x1 * c - x2 * s);
    v[i + half] = from_float<T>(x2 * c + x1 * s);
  }
}

template <class T>
__global__ void kv_append_kernel(const T* k, const T* v, T* k_cache, T* v_cache, const int32_t* slot,
                                 const int32_t* pos, int n, int kv_heads, int head_dim, int64_t slot_stride,
                                 int64_t head_stride) {
  const int64_t total = int64_t(n) * kv_heads * head_dim;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int d = int(e % head_dim);
    const int h = int((e / head_dim) % kv_heads);
    const int64_t row = e / (int64_t(head_dim) * kv_heads);
    const int64_t dst = slot[row] * slot_stride + h * head_stride + int64_t(pos[row]) * head_dim + d;
    k_cache[dst] = k[e];
    v_cache[dst] = v[e];
  }
}

template <class T>
__global__ void swiglu_kernel(const T* gate, const T* up, T* out, int64_t count) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x) {
    const float g = to_float(gate[e]);
    out[e] = from_float<T>(g / (1.f + expf(-g)) * to_float(up[e]));
  }
}

template <class T>
__global__ void add_kernel(T* x, const T* y, int64_t count) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x)
    x[e] = from_float<T>(to_float(x[e]) + to_float(y[e]));
}

template <class T>
__global__ void gather_rows_kernel(const T* x, const int32_t* rows, T* out, int n_out, int hidden) {
  const int64_t total = int64_t(n_out) * hidden;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x)
    out[e] = x[int64_t(rows[e / hidden]) * hidden + e % hidden];
}

template <class S, class D>
__global__ void convert_kernel(const S* x, D* out, int64_t count) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x)
    out[e] = from_float<D>(to_float(x[e]));
}

}  // namespace

void launch_embedding(DType dtype, const void* table, const int32_t* tokens, void* out, int n, int hidden,
                      cudaStream_t stream) {
  dispatch_half_types(dtype, "embedding", [&](auto t) {
    using T = decltype(t);
    embedding_kernel<T><<<blocks_for(int64_t(n) * hidden), kThreads, 0, stream>>>(
        static_cast<const T*>(table), tokens, static_cast<T*>(out), n, hidden);
  });
  SSPAN_CUDA_CHECK_LAUNCH("embedding_kernel");
}

void launch_rms_norm(DType dtype, const void* x, DType w_dtype, const void* w, float eps, void* out, int n,
                     int hidden, cudaStream_t stream) {
  if (n == 0) return;
  if (w_dtype != DType::F32 && w_dtype != dtype)
    cuda::throw_error("rms_norm: weight dtype must be F32 or the activation dtype");
  dispatch_half_types(dtype, "rms_norm", [&](auto t) {
    using T = decltype(t);
    if (w_dtype == DType::F32)
      rms_norm_kernel<T, float><<<unsigned(n), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const float*>(w), eps, static_cast<T*>(out), hidden);
    else
      rms_norm_kernel<T, T><<<unsigned(n), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<const T*>(w),
                                                                  eps, static_cast<T*>(out), hidden);
  });
  SSPAN_CUDA_CHECK_LAUNCH("rms_norm_kernel");
}

void launch_rope(DType dtype, void* q, void* k, const float* inv_freq, const int32_t* pos, int n, int q_heads,
                 int kv_heads, int head_dim, cudaStream_t stream) {
  dispatch_half_types(dtype, "rope", [&](auto t) {
    using T = decltype(t);
    rope_kernel<T><<<blocks_for(int64_t(n) * (q_heads + kv_heads) * (head_dim / 2)), kThreads, 0, stream>>>(
        static_cast<T*>(q), static_cast<T*>(k), inv_freq, pos, n, q_heads, kv_heads, head_dim);
  });
  SSPAN_CUDA_CHECK_LAUNCH("rope_kernel");
}

void launch_kv_append(DType dtype, const void* k, const void* v, void* k_cache, void* v_cache,
                      const int32_t* slot, const int32_t* pos, int n, int kv_heads, int head_dim,
                      int64_t slot_stride, int64_t head_stride, cudaStream_t stream) {
  dispatch_half_types(dtype, "kv_append", [&](auto t) {
    using T = decltype(t);
    kv_append_kernel<T><<<blocks_for(int64_t(n) * kv_heads * head_dim), kThreads, 0, stream>>>(
        static_cast<const T*>(k), static_cast<const T*>(v), static_cast<T*>(k_cache), static_cast<T*>(v_cache),
        slot, pos, n, kv_heads, head_dim, slot_stride, head_stride);
  });
  SSPAN_CUDA_CHECK_LAUNCH("kv_append_kernel");
}

void launch_swiglu(DType dtype, const void* gate, const void* up, void* out, int64_t count, cudaStream_t stream) {
  dispatch_half_types(dtype, "swiglu", [&](auto t) {
    using T = decltype(t);
    swiglu_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const T*>(gate),
                                                                 static_cast<const T*>(up), static_cast<T*>(out), count);
  });
  SSPAN_CUDA_CHECK_LAUNCH("swiglu_kernel");
}

void launch_add(DType dtype, void* x, const void* y, int64_t count, cudaStream_t stream) {
  dispatch_half_types(dtype, "add", [&](auto t) {
    using T = decltype(t);
    add_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(static_cast<T*>(x), static_cast<const T*>(y), count);
  });
  SSPAN_CUDA_CHECK_LAUNCH("add_kernel");
}

void launch_gather_rows(DType dtype, const void* x, const int32_t* rows, void* out, int n_out, int hidden,
                        cudaStream_t stream) {
  dispatch_all_types(dtype, "gather_rows", [&](auto t) {
    using T = decltype(t);
    gather_rows_kernel<T><<<blocks_for(int64_t(n_out) * hidden), kThreads, 0, stream>>>(
        static_cast<const T*>(x), rows, static_cast<T*>(out), n_out, hidden);
  });
  SSPAN_CUDA_CHECK_LAUNCH("gather_rows_kernel");
}

void launch_convert(DType src_dtype, const void* x, DType dst_dtype, void* out, int64_t count,
                    cudaStream_t stream) {
  if (count == 0) return;
  dispatch_all_types(src_dtype, "convert", [&](auto s) {
    using S = decltype(s);
    dispatch_all_types(dst_dtype, "convert", [&](auto d) {
      using D = decltype(d);
      convert_kernel<S, D><<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const S*>(x),
                                                                       static_cast<D*>(out), count);
    });
  });
  SSPAN_CUDA_CHECK_LAUNCH("convert_kernel");
}

}  // namespace sspan::kernels
