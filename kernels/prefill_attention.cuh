#pragma once
// Kernel template of the causal prefill attention (see prefill_attention.h).
//
// Grid: x = tile, y = query head. Four warps each own 16 query rows of the 64-row tile.
// Per K/V tile of Keys keys: S = Q K^T and O += P V on tensor cores (nvcuda::wmma
// 16x16x16); the online softmax runs on S in shared memory (two lanes per row), and the
// running output O lives in shared memory in fp32 so that it can be rescaled row by row.
// The shared-memory layout is cuda::prefill_smem_layout.
#include <cuda_runtime.h>
#include <mma.h>

#include <string>
#include <type_traits>

#include "cp_async.cuh"
#include "cuda/cuda_check.h"
#include "dtype_traits.cuh"
#include "prefill_attention.h"

namespace sspan::kernels::prefill {

using namespace nvcuda;
using cuda::prefill_smem_layout;

constexpr int kWarps = kPrefillRows / 16;
static_assert(kPrefillRows == 16 * kWarps && kWarps == 4, "each warp owns 16 query rows of the tile");

// Keys: keys per K/V tile (64, or 32 where 64 does not fit the device's shared memory).
template <class T, int D, int Keys>
__global__ void __launch_bounds__(kWarps * 32) prefill_kernel(const __grid_constant__ PrefillParams p) {
  static_assert(D % 16 == 0 && Keys % 32 == 0, "whole 16x16 fragments; two lanes per row split the keys");
  constexpr cuda::PrefillSmemLayout L = prefill_smem_layout(D, int(sizeof(T)), Keys);
  constexpr int kHalfKeys = Keys / 2;  // keys per lane in the softmax
  extern __shared__ __align__(128) unsigned char smem[];
  T* q_s = reinterpret_cast<T*>(smem + L.q);
  T* k_s = reinterpret_cast<T*>(smem + L.k);
  T* v_s = reinterpret_cast<T*>(smem + L.v);
  float* s_s = reinterpret_cast<float*>(smem + L.s);
  T* p_s = reinterpret_cast<T*>(smem + L.p);
  float* o_s = reinterpret_cast<float*>(smem + L.o);
  float* m_s = reinterpret_cast<float*>(smem + L.m);
  float* d_s = reinterpret_cast<float*>(smem + L.d);
  float* a_s = reinterpret_cast<float*>(smem + L.alpha);

  const int tile = blockIdx.x;
  if (tile >= p.num_tiles) return;
  const int h = blockIdx.y;
  const int kvh = h / (p.q_heads / p.kv_heads);
  const int row0 = p.tiles[2 * tile];
  const int rows = min(p.tiles[2 * tile + 1], kPrefillRows);  // checked on the host; never past o_s
  const int pos0 = p.pos[row0];
  const int pos_last = pos0 + rows - 1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kChunks = D * int(sizeof(T)) / 16;  // 16-byte chunks per row
  constexpr int kElems = 16 / int(sizeof(T));

  // Q tile (rows past the tile zero-filled), O = 0, m = -inf, d = 0.
  const T* q_base = static_cast<const T*>(p.q) + int64_t(h) * D;
  for (int c = threadIdx.x; c < kPrefillRows * kChunks; c += blockDim.x) {
    const int r = c / kChunks, ch = c % kChunks;
    const bool valid = r < rows;
    cp_async_16(q_s + r * L.qkv_ld + ch * kElems, q_base + (valid ? int64_t(row0 + r) * p.q_row_stride + ch * kElems : 0),
                valid);
  }
  cp_async_commit();
  for (int e = threadIdx.x; e < kPrefillRows * L.o_ld; e += blockDim.x) o_s[e] = 0.f;
  for (int r = threadIdx.x; r < kPrefillRows; r += blockDim.x) {
    m_s[r] = -INFINITY;
    d_s[r] = 0.f;
  }

  const int64_t base = int64_t(p.slot[row0]) * p.cache_slot_stride + int64_t(kvh) * p.cache_head_stride;
  const T* k_base = static_cast<const T*>(p.k_cache) + base;
  const T* v_base = static_cast<const T*>(p.v_cache) + base;
  const float scale_log2 = p.scale * 1.4426950408889634f;
  const int warp_row0 = warp * 16;
  const bool warp_live = warp_row0 < rows;
  const int warp_pos_last = pos0 + min(rows, warp_row0 + 16) - 1;

  for (int kb = 0; kb <= pos_last; kb += Keys) {
    __syncthreads();  // previous K/V tile fully consumed
    for (int c = threadIdx.x; c < Keys * kChunks; c += blockDim.x) {
      const int t = c / kChunks, ch = c % kChunks;
      const bool valid = kb + t <= pos_last;
      const int64_t off = valid ? int64_t(kb + t) * D + ch * kElems : 0;
      cp_async_16(k_s + t * L.qkv_ld + ch * kElems, k_base + off, valid);
      cp_async_16(v_s + t * L.qkv_ld + ch * kElems, v_base + off, valid);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (!warp_live || kb > warp_pos_last) continue;  // no row of this warp sees these keys

    float* s_w = s_s + warp_row0 * L.s_ld;
    T* p_w = p_s + warp_row0 * L.p_ld;
    float* o_w = o_s + warp_row0 * L.o_ld;

    // S[16][64] = Q_w[16][D] . K[64][D]^T
#pragma unroll
    for (int j = 0; j < Keys / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::load_matrix_sync(a, q_s + warp_row0 * L.qkv_ld + kk * 16, L.qkv_ld);
        wmma::load_matrix_sync(b, k_s + j * 16 * L.qkv_ld + kk * 16, L.qkv_ld);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(s_w + j * 16, acc, L.s_ld, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax: lanes 2r and 2r+1 share row r, half of the keys each. Keys after the
    // row's position get p = 0 and stay out of the max.
    {
      const int r = lane / 2, c0 = (lane % 2) * kHalfKeys;
      const int row_pos = pos0 + warp_row0 + r;
      float sc[kHalfKeys];
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < kHalfKeys; ++c) {
        const int key = kb + c0 + c;
        sc[c] = key <= row_pos ? s_w[r * L.s_ld + c0 + c] * scale_log2 : -INFINITY;
        mx = fmaxf(mx, sc[c]);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      const int gr = warp_row0 + r;
      const float m_old = m_s[gr];
      const float m_new = fmaxf(m_old, mx);
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < kHalfKeys; ++c) {
        const float pv = m_new == -INFINITY ? 0.f : exp2f(sc[c] - m_new);
        const T pt = from_float<T>(pv);
        p_w[r * L.p_ld + c0 + c] = pt;
        sum += to_float(pt);  // sum what the PV product will use
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      const float alpha = m_new == -INFINITY ? 1.f : exp2f(m_old - m_new);
      __syncwarp();
      if (lane % 2 == 0) {
        m_s[gr] = m_new;
        d_s[gr] = d_s[gr] * alpha + sum;
        a_s[gr] = alpha;
      }
    }
    __syncwarp();
    for (int e = lane; e < 16 * D; e += 32) o_w[(e / D) * L.o_ld + e % D] *= a_s[warp_row0 + e / D];
    __syncwarp();

    // O_w[16][D] += P_w[16][64] . V[64][D]
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, o_w + j * 16, L.o_ld, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < Keys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(a, p_w + kk * 16, L.p_ld);
        wmma::load_matrix_sync(b, v_s + kk * 16 * L.qkv_ld + j * 16, L.qkv_ld);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(o_w + j * 16, acc, L.o_ld, wmma::mem_row_major);
    }
    __syncwarp();
  }
  __syncthreads();

  T* out_base = static_cast<T*>(p.out) + int64_t(h) * D;
  for (int e = threadIdx.x; e < rows * D; e += blockDim.x) {
    const int r = e / D, c = e % D;
    const float dn = d_s[r];
    out_base[int64_t(row0 + r) * p.out_row_stride + c] = from_float<T>(dn > 0.f ? o_s[r * L.o_ld + c] / dn : 0.f);
  }
}

template <class T, int D, int Keys>
void launch_kernel(const PrefillParams& p, cudaStream_t stream) {
  constexpr size_t kBytes = prefill_smem_layout(D, int(sizeof(T)), Keys).bytes;
  static cuda::PerDeviceSetting setting;  // the shared-memory limit, raised once per device
  setting.raise(cuda::current_device(), int(kBytes), [](int value) {
    SSPAN_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<T, D, Keys>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          value));
  });
  const dim3 grid(unsigned(p.num_tiles), unsigned(p.q_heads));
  prefill_kernel<T, D, Keys><<<grid, kWarps * 32, kBytes, stream>>>(p);
  SSPAN_CUDA_CHECK_LAUNCH("prefill_kernel");
}

template <class T, int D>
void launch_with_keys(const PrefillParams& p, cudaStream_t stream) {
  if (p.keys == 64) launch_kernel<T, D, 64>(p, stream);
  else launch_kernel<T, D, 32>(p, stream);
}

template <class T>
void launch_for_type(const PrefillParams& p, cudaStream_t stream) {
  switch (p.head_dim) {
    case 32: return launch_with_keys<T, 32>(p, stream);
    case 48: return launch_with_keys<T, 48>(p, stream);
    case 64: return launch_with_keys<T, 64>(p, stream);
    case 80: return launch_with_keys<T, 80>(p, stream);
    case 96: return launch_with_keys<T, 96>(p, stream);
    case 128: return launch_with_keys<T, 128>(p, stream);
  }
  cuda::throw_error("prefill attention: head_dim " + std::to_string(p.head_dim) + " is not instantiated");
}

}  // namespace sspan::kernels::prefill

namespace sspan::kernels {
void launch_prefill_f16(const PrefillParams& p, cudaStream_t stream);
void launch_prefill_bf16(const PrefillParams& p, cudaStream_t stream);
}  // namespace sspan::kernels
