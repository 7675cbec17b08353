#pragma once
// Kernel templates of the block-sparse decode attention (see sparse_decode_attention.h).
//
// Grid: x = row * Hkv + kv_head, y = split. One CTA serves all G query heads of one KV
// head, so every K/V byte it loads is used by the whole group. The row's work list is
// [listed blocks' 32-token sub-tiles ... | 32-token chunks of the tail]; split s takes a
// contiguous share of it and each warp takes every kDecodeWarps-th item of that share.
// Items whose mask is zero are skipped before any load. Each warp streams K and V tiles
// through its own cp.async ring (kStages deep) and keeps a FlashAttention-style online
// softmax state {o, m, d} per head in fp32; warps are merged through shared memory at the
// end, splits by sparse_decode_merge_kernel. Scores are kept in log2 units (exp2).
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cp_async.cuh"
#include "cuda/cuda_check.h"
#include "dtype_traits.cuh"
#include "sparse_decode_attention.h"

namespace sspan::kernels::decode {

constexpr int kStages = 2;  // tiles in flight per warp (one computing, one loading)
constexpr int kPad = 8;     // elements of padding per shared row: 16 bytes, no bank conflicts

template <int D>
constexpr int row_elems() { return D + kPad; }

template <class T, int D>
constexpr int stage_elems() { return 2 * kDecodeTileTokens * row_elems<D>(); }  // K tile + V tile

template <class T, int D>
constexpr size_t shared_bytes() {
  return size_t(kDecodeWarps) * kStages * stage_elems<T, D>() * sizeof(T) +
         size_t(kDecodeMaxGroup) * D * sizeof(float);  // + the group's queries in fp32
}

// Where one work item lives: 32 consecutive positions from `start`, bit j of `mask` set
// when position start + j is attended.
struct Item {
  int start;
  uint32_t mask;
};

struct RowWork {
  int first_entry;  // indptr[row]
  int sparse_items; // listed blocks x sub-tiles per block
  int tail_start;
  int pos;
  int total_items;
};

__device__ __forceinline__ RowWork row_work(const SparseDecodeParams& p, int row) {
  RowWork w;
  w.first_entry = p.indptr[row];
  int items_per_block = p.block_size <= kDecodeTileTokens ? 1 : p.block_size / kDecodeTileTokens;
  w.sparse_items = (p.indptr[row + 1] - w.first_entry) * items_per_block;
  w.tail_start = p.tail_start[row];
  w.pos = p.pos[row];
  int tail_len = w.pos >= w.tail_start ? w.pos - w.tail_start + 1 : 0;
  w.total_items = w.sparse_items + (tail_len + kDecodeTileTokens - 1) / kDecodeTileTokens;
  return w;
}

__device__ __forceinline__ Item item_at(const SparseDecodeParams& p, const RowWork& w, int it) {
  Item item;
  if (it < w.sparse_items) {
    const int items_per_block = p.block_size <= kDecodeTileTokens ? 1 : p.block_size / kDecodeTileTokens;
    const int entry = w.first_entry + it / items_per_block;
    const int sub = it % items_per_block;
    const int block = p.block_ids[int64_t(entry) * p.block_id_stride];
    uint32_t mask = p.masks[int64_t(entry) * p.mask_stride + sub];
    if (p.block_size < kDecodeTileTokens) mask &= (1u << p.block_size) - 1u;  // B = 16
    item.start = block * p.block_size + sub * kDecodeTileTokens;
    item.mask = mask;
  } else {
    item.start = w.tail_start + (it - w.sparse_items) * kDecodeTileTokens;
    const int n = min(kDecodeTileTokens, w.pos - item.start + 1);
    item.mask = n >= 32 ? 0xffffffffu : ((1u << n) - 1u);
  }
  // Never read past the cache, whatever the list says.
  const int room = p.max_ctx - item.start;
  if (room <= 0) item.mask = 0;
  else if (room < 32) item.mask &= (1u << room) - 1u;
  return item;
}

// The next item at or after `it` (stepping by kDecodeWarps) with a nonzero mask, or `end`.
__device__ __forceinline__ int next_live(const SparseDecodeParams& p, const RowWork& w, int it, int end) {
  while (it < end && item_at(p, w, it).mask == 0) it += kDecodeWarps;
  return it < end ? it : end;
}

// One warp copies the K and V rows of `item` into its stage: 16-byte chunks, consecutive
// lanes on consecutive chunks of a row; masked rows are zero-filled without a read.
template <class T, int D>
__device__ __forceinline__ void load_tile(const T* k_base, const T* v_base, Item item, T* stage, int lane) {
  constexpr int kChunksPerRow = D * int(sizeof(T)) / 16;
  constexpr int kElemsPerChunk = 16 / int(sizeof(T));
  T* k_tile = stage;                                         // [32][D + kPad]
  T* v_tile = stage + kDecodeTileTokens * row_elems<D>();    // [32][D + kPad]
#pragma unroll
  for (int i = 0; i < kChunksPerRow; ++i) {
    const int c = i * 32 + lane;
    const int t = c / kChunksPerRow;
    const int ch = c % kChunksPerRow;
    const bool valid = (item.mask >> t) & 1u;
    const int64_t src_off = valid ? int64_t(item.start + t) * D + ch * kElemsPerChunk : 0;
    const int dst_off = t * row_elems<D>() + ch * kElemsPerChunk;
    cp_async_16(k_tile + dst_off, k_base + src_off, valid);
    cp_async_16(v_tile + dst_off, v_base + src_off, valid);
  }
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// 8 consecutive elements of a shared row as floats.
template <class T>
__device__ __forceinline__ void load8(const T* src, float (&dst)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(src);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) dst[i] = to_float(e[i]);
}

// N (2 or 4) consecutive elements of a shared row as floats, in one 4- or 8-byte load.
template <class T, int N>
__device__ __forceinline__ void load_n(const T* src, float (&dst)[N]) {
  static_assert(N == 2 || N == 4, "2 or 4 elements per lane");
  using Vec = std::conditional_t<N == 4, uint2, uint32_t>;
  const Vec raw = *reinterpret_cast<const Vec*>(src);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < N; ++i) dst[i] = to_float(e[i]);
}

template <class T, int D, int G>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    sparse_decode_kernel(const __grid_constant__ SparseDecodeParams p) {
  constexpr int kDimsPerLane = D / 32;  // output dims owned by a lane in the PV product
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* stages = reinterpret_cast<T*>(smem_raw);  // [warps][kStages][K,V][32][D + kPad]
  float* q_s = reinterpret_cast<float*>(smem_raw + size_t(kDecodeWarps) * kStages *
                                                       stage_elems<T, D>() * sizeof(T));  // [G][D]

  const int row = blockIdx.x / p.kv_heads;
  const int kvh = blockIdx.x % p.kv_heads;
  const int split = blockIdx.y;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int group = p.q_heads / p.kv_heads;  // runtime G <= template G

  // The group's queries, fp32, pre-scaled so that scores come out in log2 units.
  const float q_scale = p.scale * 1.4426950408889634f;
  const T* q_row = static_cast<const T*>(p.q) + int64_t(row) * p.q_row_stride + int64_t(kvh) * group * D;
  for (int e = threadIdx.x; e < group * D; e += blockDim.x) q_s[e] = to_float(q_row[e]) * q_scale;
  __syncthreads();

  const RowWork work = row_work(p, row);
  const int per_split = (work.total_items + p.splits - 1) / p.splits;
  const int begin = split * per_split;
  const int end = min(work.total_items, begin + per_split);

  const int64_t base = int64_t(p.slot[row]) * p.cache_slot_stride + int64_t(kvh) * p.cache_head_stride;
  const T* k_base = static_cast<const T*>(p.k_cache) + base;
  const T* v_base = static_cast<const T*>(p.v_cache) + base;
  T* my_stages = stages + warp * kStages * stage_elems<T, D>();

  float m[G], d[G], o[G][kDimsPerLane];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    d[g] = 0.f;
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) o[g][j] = 0.f;
  }

  // Prologue: fill kStages - 1 stages. Every iteration commits one group (maybe empty) so
  // that wait_group counts line up with items.
  int fetch = next_live(p, work, begin + warp, end);
  int cur = fetch;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (fetch < end) {
      load_tile<T, D>(k_base, v_base, item_at(p, work, fetch), my_stages + s * stage_elems<T, D>(), lane);
      fetch = next_live(p, work, fetch + kDecodeWarps, end);
    }
    cp_async_commit();
  }
  int fetch_stage = kStages - 1;
  int compute_stage = 0;

  while (cur < end) {
    if (fetch < end) {
      load_tile<T, D>(k_base, v_base, item_at(p, work, fetch), my_stages + fetch_stage * stage_elems<T, D>(), lane);
      fetch = next_live(p, work, fetch + kDecodeWarps, end);
    }
    cp_async_commit();
    fetch_stage = (fetch_stage + 1) % kStages;
    cp_async_wait<kStages - 1>();
    __syncwarp();

    const Item item = item_at(p, work, cur);
    const T* k_tile = my_stages + compute_stage * stage_elems<T, D>();
    const T* v_tile = k_tile + kDecodeTileTokens * row_elems<D>();
    const bool live = (item.mask >> lane) & 1u;

    // Scores: lane t owns token t and computes its dot product with every query head.
    float s[G];
#pragma unroll
    for (int g = 0; g < G; ++g) s[g] = 0.f;
    const T* k_row = k_tile + lane * row_elems<D>();
#pragma unroll 4
    for (int c = 0; c < D; c += 8) {
      float k8[8];
      load8(k_row + c, k8);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        if (g < group) {
          const float4 qa = *reinterpret_cast<const float4*>(q_s + g * D + c);
          const float4 qb = *reinterpret_cast<const float4*>(q_s + g * D + c + 4);
          s[g] += qa.x * k8[0] + qa.y * k8[1] + qa.z * k8[2] + qa.w * k8[3] + qb.x * k8[4] +
                  qb.y * k8[5] + qb.z * k8[6] + qb.w * k8[7];
        }
      }
    }

    // Online softmax: masked tokens get p = 0 and stay out of the max. The tile has at
    // least one live token, so the new max is finite.
    float prob[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float score = live ? s[g] : -INFINITY;
      const float m_new = fmaxf(m[g], warp_max(score));
      const float alpha = exp2f(m[g] - m_new);  // m = -inf -> 0
      prob[g] = live ? exp2f(score - m_new) : 0.f;
      d[g] = d[g] * alpha + warp_sum(prob[g]);
      m[g] = m_new;
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) o[g][j] *= alpha;
    }

    // o += p . V: lane owns dims [lane * kDimsPerLane, +kDimsPerLane); p comes by shuffle.
#pragma unroll 4
    for (int t = 0; t < kDecodeTileTokens; ++t) {
      float v[kDimsPerLane];
      load_n<T, kDimsPerLane>(v_tile + t * row_elems<D>() + lane * kDimsPerLane, v);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float pt = __shfl_sync(0xffffffffu, prob[g], t);
#pragma unroll
        for (int j = 0; j < kDimsPerLane; ++j) o[g][j] += pt * v[j];
      }
    }
    __syncwarp();  // the stage is refilled by a later iteration
    compute_stage = (compute_stage + 1) % kStages;
    cur = next_live(p, work, cur + kDecodeWarps, end);
  }
  cp_async_wait<0>();  // only empty groups can remain; drain before reusing shared memory
  __syncthreads();

  // Merge the warps' states through shared memory (the stage area is free now).
  float* red_o = reinterpret_cast<float*>(smem_raw);  // [warps][G][D]
  float* red_m = red_o + kDecodeWarps * G * D;         // [warps][G]
  float* red_d = red_m + kDecodeWarps * G;             // [warps][G]
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) red_o[(warp * G + g) * D + lane * kDimsPerLane + j] = o[g][j];
    if (lane == 0) {
      red_m[warp * G + g] = m[g];
      red_d[warp * G + g] = d[g];
    }
  }
  __syncthreads();

  for (int e = threadIdx.x; e < group * D; e += blockDim.x) {
    const int g = e / D;
    const int dim = e % D;
    float m_all = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) m_all = fmaxf(m_all, red_m[w * G + g]);
    float d_all = 0.f, o_all = 0.f;
    if (m_all != -INFINITY) {  // an empty state (m = -inf, d = 0) contributes nothing
#pragma unroll
      for (int w = 0; w < kDecodeWarps; ++w) {
        const float scale = exp2f(red_m[w * G + g] - m_all);
        d_all += red_d[w * G + g] * scale;
        o_all += red_o[(w * G + g) * D + dim] * scale;
      }
    }
    const float o_norm = d_all > 0.f ? o_all / d_all : 0.f;
    const int h = kvh * group + g;
    if (p.splits == 1) {
      T* out = static_cast<T*>(p.out) + int64_t(row) * p.out_row_stride + int64_t(h) * D;
      out[dim] = from_float<T>(o_norm);
    } else {
      const int64_t state = (int64_t(row) * p.q_heads + h) * p.splits + split;
      p.part_o[state * D + dim] = o_norm;
      if (dim == 0) {
        p.part_m[state] = m_all;
        p.part_d[state] = d_all;
      }
    }
  }
}

// One CTA per (row, query head), one thread per output dim: combine the splits' states.
// A split with m = -inf (no attended position) has weight 0; never 0/0.
template <class T>
__global__ void sparse_decode_merge_kernel(const __grid_constant__ SparseDecodeParams p) {
  const int row = blockIdx.x / p.q_heads;
  const int h = blockIdx.x % p.q_heads;
  const int64_t first = (int64_t(row) * p.q_heads + h) * p.splits;
  float m_all = -INFINITY;
  for (int s = 0; s < p.splits; ++s) m_all = fmaxf(m_all, p.part_m[first + s]);
  for (int dim = threadIdx.x; dim < p.head_dim; dim += blockDim.x) {
    float w_sum = 0.f, o_sum = 0.f;
    if (m_all != -INFINITY) {
      for (int s = 0; s < p.splits; ++s) {
        const float w = p.part_d[first + s] * exp2f(p.part_m[first + s] - m_all);
        w_sum += w;
        o_sum += w * p.part_o[(first + s) * p.head_dim + dim];
      }
    }
    T* out = static_cast<T*>(p.out) + int64_t(row) * p.out_row_stride + int64_t(h) * p.head_dim;
    out[dim] = from_float<T>(w_sum > 0.f ? o_sum / w_sum : 0.f);
  }
}

// Raise the kernel's dynamic shared-memory limit once per instantiation (per process).
template <class T, int D, int G>
void configure_once() {
  static const cudaError_t err = cudaFuncSetAttribute(
      sparse_decode_kernel<T, D, G>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared_bytes<T, D>()));
  SSPAN_CUDA_CHECK(err);
}

template <class T, int D, int G>
void launch_kernels(const SparseDecodeParams& p, cudaStream_t stream) {
  configure_once<T, D, G>();
  const dim3 grid(unsigned(p.rows) * unsigned(p.kv_heads), unsigned(p.splits));
  sparse_decode_kernel<T, D, G><<<grid, kDecodeWarps * 32, shared_bytes<T, D>(), stream>>>(p);
  SSPAN_CUDA_CHECK_LAUNCH("sparse_decode_kernel");
  if (p.splits > 1) {
    sparse_decode_merge_kernel<T><<<unsigned(p.rows) * unsigned(p.q_heads), D, 0, stream>>>(p);
    SSPAN_CUDA_CHECK_LAUNCH("sparse_decode_merge_kernel");
  }
}

// Picks the head_dim and group-size instantiation (group rounded up to 1, 2, 4 or 8).
template <class T>
void launch_for_type(const SparseDecodeParams& p, cudaStream_t stream) {
  const int group = p.q_heads / p.kv_heads;
  auto with_dim = [&](auto dim_tag) {
    constexpr int D = decltype(dim_tag)::value;
    if (group == 1) launch_kernels<T, D, 1>(p, stream);
    else if (group == 2) launch_kernels<T, D, 2>(p, stream);
    else if (group <= 4) launch_kernels<T, D, 4>(p, stream);
    else launch_kernels<T, D, 8>(p, stream);
  };
  if (p.head_dim == 64) with_dim(std::integral_constant<int, 64>{});
  else with_dim(std::integral_constant<int, 128>{});
}

}  // namespace sspan::kernels::decode

namespace sspan::kernels {
void launch_sparse_decode_f16(const SparseDecodeParams& p, cudaStream_t stream);
void launch_sparse_decode_bf16(const SparseDecodeParams& p, cudaStream_t stream);

}  // namespace sspan::kernels
