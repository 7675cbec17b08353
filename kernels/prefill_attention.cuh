#pragma once
// Kernel template of the causal prefill attention (see prefill_attention.h).
//
// Grid: x = tile, y = query head. Four warps each own 16 query rows of the 64-row tile.
// Per 64-key tile: S = Q K^T and O += P V on tensor cores (nvcuda::wmma 16x16x16); the
// online softmax runs on S in shared memory (two lanes per row), and the running output
// O lives in shared memory in fp32 so that it can be rescaled row by row.
#include <cuda_runtime.h>
#include <mma.h>

#include <type_traits>

#include "cp_async.cuh"
#include "cuda/cuda_check.h"
#include "dtype_traits.cuh"
#include "prefill_attention.h"

namespace sspan::kernels::prefill {

using namespace nvcuda;

constexpr int kWarps = kPrefillRows / 16;
constexpr int kSPad = 4;  // float padding of S and O rows
constexpr int kHPad = 8;  // 16-bit padding of Q, K, V and P rows

constexpr size_t align32(size_t x) { return (x + 31) / 32 * 32; }

// Shared layout, byte offsets (every fragment pointer stays 32-byte aligned).
template <class T, int D>
struct Smem {
  static constexpr int kQkvLd = D + kHPad;
  static constexpr int kSLd = kPrefillKeys + kSPad;
  static constexpr int kPLd = kPrefillKeys + kHPad;
  static constexpr int kOLd = D + kSPad;
  static constexpr size_t q = 0;                                                         // [64][D+8] T
  static constexpr size_t k = align32(q + size_t(kPrefillRows) * kQkvLd * sizeof(T));    // [64][D+8] T
  static constexpr size_t v = align32(k + size_t(kPrefillKeys) * kQkvLd * sizeof(T));    // [64][D+8] T
  static constexpr size_t s = align32(v + size_t(kPrefillKeys) * kQkvLd * sizeof(T));    // [64][64+4] f32
  static constexpr size_t p = align32(s + size_t(kPrefillRows) * kSLd * sizeof(float));  // [64][64+8] T
  static constexpr size_t o = align32(p + size_t(kPrefillRows) * kPLd * sizeof(T));      // [64][D+4] f32
  static constexpr size_t m = align32(o + size_t(kPrefillRows) * kOLd * sizeof(float));  // [64] f32 running max
  static constexpr size_t d = m + kPrefillRows * sizeof(float);                          // [64] f32 running sum
  static constexpr size_t alpha = d + kPrefillRows * sizeof(float);                      // [64] f32 rescale
  static constexpr size_t bytes = alpha + kPrefillRows * sizeof(float);
};

template <class T, int D>
__global__ void __launch_bounds__(kWarps * 32) prefill_kernel(const __grid_constant__ PrefillParams p) {
  using L = Smem<T, D>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* q_s = reinterpret_cast<T*>(smem + L::q);
  T* k_s = reinterpret_cast<T*>(smem + L::k);
  T* v_s = reinterpret_cast<T*>(smem + L::v);
  float* s_s = reinterpret_cast<float*>(smem + L::s);
  T* p_s = reinterpret_cast<T*>(smem + L::p);
  float* o_s = reinterpret_cast<float*>(smem + L::o);
  float* m_s = reinterpret_cast<float*>(smem + L::m);
  float* d_s = reinterpret_cast<float*>(smem + L::d);
  float* a_s = reinterpret_cast<float*>(smem + L::alpha);

  const int tile = blockIdx.x;
  if (tile >= p.num_tiles) return;
  const int h = blockIdx.y;
  const int kvh = h / (p.q_heads / p.kv_heads);
  const int row0 = p.tiles[2 * tile];
  const int rows = p.tiles[2 * tile + 1];
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
    cp_async_16(q_s + r * L::kQkvLd + ch * kElems, q_base + (valid ? int64_t(row0 + r) * p.q_row_stride + ch * kElems : 0),
                valid);
  }
  cp_async_commit();
  for (int e = threadIdx.x; e < kPrefillRows * L::kOLd; e += blockDim.x) o_s[e] = 0.f;
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

  for (int kb = 0; kb <= pos_last; kb += kPrefillKeys) {
    __syncthreads();  // previous K/V tile fully consumed
    for (int c = threadIdx.x; c < kPrefillKeys * kChunks; c += blockDim.x) {
      const int t = c / kChunks, ch = c % kChunks;
      const bool valid = kb + t <= pos_last;
      const int64_t off = valid ? int64_t(kb + t) * D + ch * kElems : 0;
      cp_async_16(k_s + t * L::kQkvLd + ch * kElems, k_base + off, valid);
      cp_async_16(v_s + t * L::kQkvLd + ch * kElems, v_base + off, valid);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (!warp_live || kb > warp_pos_last) continue;  // no row of this warp sees these keys

    float* s_w = s_s + warp_row0 * L::kSLd;
    T* p_w = p_s + warp_row0 * L::kPLd;
    float* o_w = o_s + warp_row0 * L::kOLd;

    // S[16][64] = Q_w[16][D] . K[64][D]^T
#pragma unroll
    for (int j = 0; j < kPrefillKeys / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::load_matrix_sync(a, q_s + warp_row0 * L::kQkvLd + kk * 16, L::kQkvLd);
        wmma::load_matrix_sync(b, k_s + j * 16 * L::kQkvLd + kk * 16, L::kQkvLd);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(s_w + j * 16, acc, L::kSLd, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax: lanes 2r and 2r+1 share row r, 32 keys each. Keys after the row's
    // position get p = 0 and stay out of the max.
    {
      const int r = lane / 2, c0 = (lane % 2) * 32;
      const int row_pos = pos0 + warp_row0 + r;
      float sc[32];
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 32; ++c) {
        const int key = kb + c0 + c;
        sc[c] = key <= row_pos ? s_w[r * L::kSLd + c0 + c] * scale_log2 : -INFINITY;
        mx = fmaxf(mx, sc[c]);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      const int gr = warp_row0 + r;
      const float m_old = m_s[gr];
      const float m_new = fmaxf(m_old, mx);
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < 32; ++c) {
        const float pv = m_new == -INFINITY ? 0.f : exp2f(sc[c] - m_new);
        const T pt = from_float<T>(pv);
        p_w[r * L::kPLd + c0 + c] = pt;
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
    for (int e = lane; e < 16 * D; e += 32) o_w[(e / D) * L::kOLd + e % D] *= a_s[warp_row0 + e / D];
    __syncwarp();

    // O_w[16][D] += P_w[16][64] . V[64][D]
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, o_w + j * 16, L::kOLd, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kPrefillKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(a, p_w + kk * 16, L::kPLd);
        wmma::load_matrix_sync(b, v_s + kk * 16 * L::kQkvLd + j * 16, L::kQkvLd);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(o_w + j * 16, acc, L::kOLd, wmma::mem_row_major);
    }
    __syncwarp();
  }
  __syncthreads();

  T* out_base = static_cast<T*>(p.out) + int64_t(h) * D;
  for (int e = threadIdx.x; e < rows * D; e += blockDim.x) {
    const int r = e / D, c = e % D;
    const float dn = d_s[r];
    out_base[int64_t(row0 + r) * p.out_row_stride + c] = from_float<T>(dn > 0.f ? o_s[r * L::kOLd + c] / dn : 0.f);
  }
}

template <class T, int D>
void launch_kernel(const PrefillParams& p, cudaStream_t stream) {
  static const cudaError_t attr = cudaFuncSetAttribute(prefill_kernel<T, D>,
                                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(Smem<T, D>::bytes));
  SSPAN_CUDA_CHECK(attr);
  const dim3 grid(unsigned(p.num_tiles), unsigned(p.q_heads));
  prefill_kernel<T, D><<<grid, kWarps * 32, Smem<T, D>::bytes, stream>>>(p);
  SSPAN_CUDA_CHECK_LAUNCH("prefill_kernel");
}

template <class T>
void launch_for_type(const PrefillParams& p, cudaStream_t stream) {
  if (p.head_dim == 64) launch_kernel<T, 64>(p, stream);
  else launch_kernel<T, 128>(p, stream);
}

}  // namespace sspan::kernels::prefill

namespace sspan::kernels {
void launch_prefill_f16(const PrefillParams& p, cudaStream_t stream);
void launch_prefill_bf16(const PrefillParams& p, cudaStream_t stream);
}  // namespace sspan::kernels
