#pragma once
// Kernel templates of the block-sparse decode attention (see sparse_decode_attention.h).
//
// Grid: x = decode row * Hkv + kv_head, y = split; 32 * warps threads. One CTA serves all
// query heads of one KV head's group, so every K/V byte it loads is used by the whole
// group. A row's work list is [listed blocks' 32-token sub-tiles ... | 32-token chunks of
// the tail]; split s takes a contiguous share of it and warp w every warps-th item of that
// share. A warp stages 32 candidate items at once (their metadata loads all in flight
// together), keeps the live ones (nonzero mask) in a small shared list, and streams their
// K/V tiles through its own 2-stage cp.async ring; masked tokens inside a live item are
// zero-filled without a read. Per tile it updates a FlashAttention-style online softmax
// state {o, m, d} per head in fp32, with fp32 FMAs (ScalarMath) or tensor cores
// (MmaMath). Warps merge through shared memory at the end, splits in
// sparse_decode_merge_kernel. Scores are kept in log2 units (exp2). A recorded row's
// scores also go to raw_scores as a tile computes them (no second pass over K), and its
// final normaliser to score_lse where the last merge knows it.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "cp_async.cuh"
#include "cuda/cuda_check.h"
#include "cuda/kernel_config.h"
#include "dtype_traits.cuh"
#include "mma.cuh"
#include "sparse_decode_attention.h"

namespace sspan::kernels::decode {

using cuda::decode_smem_layout;
using cuda::DecodeSmemLayout;
using cuda::kDecodeMaxWarps;
using cuda::kDecodePad;
using cuda::kDecodeStages;

static_assert(kDecodeStages == 2, "the item ring below holds one tile computing and one in flight");
static_assert(kDecodeTileTokens == 32, "one lane per token, one mask word per item");
static_assert(sizeof(uint32_t) + sizeof(int) == cuda::kDecodeItemBytes, "Item is the staged record");

template <int D>
constexpr int row_elems() { return D + kDecodePad; }

// Where one work item lives: 32 consecutive positions from `start`, bit j of `mask` set
// when position start + j is attended.
struct Item {
  int start;
  uint32_t mask;
};

struct RowWork {
  int first_entry;   // indptr[row]
  int sparse_items;  // listed blocks x sub-tiles per block
  int sub_shift;     // log2(sub-tiles per block): 0 for B <= 32
  int tail_start;
  int pos;
  int total_items;
};

// The span row that (step row, KV head) attends in this launch's layer: cuda::span_row_of
// (src/cuda/span_rows.h), where the host packs them.
__device__ __forceinline__ int span_row_of(const SparseDecodeParams& p, int row, int kvh) {
  const int first = p.head_first ? p.head_first[row] : -1;
  return first >= 0 ? first + p.layer * p.kv_heads + kvh : row;
}

__device__ __forceinline__ RowWork row_work(const SparseDecodeParams& p, int row, int span_row) {
  RowWork w;
  w.first_entry = p.indptr[span_row];
  w.sub_shift = p.block_size <= 32 ? 0 : p.block_size == 64 ? 1 : p.block_size == 128 ? 2 : 3;
  w.sparse_items = (p.indptr[span_row + 1] - w.first_entry) << w.sub_shift;
  w.tail_start = p.tail_start[span_row];
  w.pos = p.pos[row];
  const int tail_len = w.pos >= w.tail_start ? w.pos - w.tail_start + 1 : 0;
  w.total_items = w.sparse_items + (tail_len + kDecodeTileTokens - 1) / kDecodeTileTokens;
  return w;
}

__device__ __forceinline__ Item item_at(const SparseDecodeParams& p, const RowWork& w, int it) {
  Item item;
  if (it < w.sparse_items) {
    const int entry = w.first_entry + (it >> w.sub_shift);
    const int sub = it & ((1 << w.sub_shift) - 1);
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

// One warp's live items: candidates next, next + stride, ... below end, staged 32 at a
// time into the warp's shared list (one item per lane, one ballot) so that their metadata
// loads overlap instead of forming a chain before every tile. Warp-uniform.
struct LiveItems {
  int next, stride, end;
  int count = 0, taken = 0;
  Item* list;  // [32] in shared memory, this warp's

  __device__ __forceinline__ bool pop(const SparseDecodeParams& p, const RowWork& w, int lane, Item& out) {
    while (taken == count) {
      if (next >= end) return false;
      const int it = next + lane * stride;
      Item item{0, 0u};
      if (it < end) item = item_at(p, w, it);
      const unsigned live = __ballot_sync(0xffffffffu, item.mask != 0u);
      __syncwarp();  // every lane has read the previous list
      if (item.mask != 0u) list[__popc(live & ((1u << lane) - 1u))] = item;
      __syncwarp();
      count = __popc(live);
      taken = 0;
      next += 32 * stride;
    }
    out = list[taken++];
    return true;
  }
};

// One warp's copy of an item's K and V rows into a stage: 16-byte chunks, consecutive
// lanes on consecutive chunks of a row. Each lane's offsets are computed once; per item
// only the row base moves and rows step by compile-time strides. Masked rows are
// zero-filled without a read (their source is the always-valid row 0 of the head).
template <class T, int D>
struct TileCopy {
  static constexpr int kElemsPerChunk = 16 / int(sizeof(T));
  static constexpr int kChunks = D / kElemsPerChunk;  // per row
  static constexpr int kLanesPerRow = kChunks <= 4 ? 4 : kChunks <= 8 ? 8 : kChunks <= 16 ? 16 : 32;
  static constexpr int kRowsPerPass = 32 / kLanesPerRow;
  static constexpr int kPasses = kDecodeTileTokens / kRowsPerPass;
  static_assert(D % kElemsPerChunk == 0 && kChunks <= 32, "rows are whole 16-byte chunks");

  int first_row;  // this lane's first row of the tile
  int src_off;    // element offset of this lane's chunk in that row, global
  int dst_off;    // and in shared memory
  bool active;    // the lane has a chunk (kChunks may be less than kLanesPerRow)

  __device__ __forceinline__ explicit TileCopy(int lane) {
    first_row = lane / kLanesPerRow;
    const int chunk = lane % kLanesPerRow;
    active = chunk < kChunks;
    src_off = first_row * D + chunk * kElemsPerChunk;
    dst_off = first_row * row_elems<D>() + chunk * kElemsPerChunk;
  }

  __device__ __forceinline__ void issue(const T* k_base, const T* v_base, Item item, T* stage) const {
    if (!active) return;
    const int64_t at = int64_t(item.start) * D + src_off;
    const T* k_src = k_base + at;
    const T* v_src = v_base + at;
    T* k_dst = stage + dst_off;
    T* v_dst = stage + kDecodeTileTokens * row_elems<D>() + dst_off;
    const uint32_t bits = item.mask >> first_row;
#pragma unroll
    for (int i = 0; i < kPasses; ++i) {
      const bool valid = (bits >> (i * kRowsPerPass)) & 1u;
      cp_async_16(k_dst + i * kRowsPerPass * row_elems<D>(), valid ? k_src + i * kRowsPerPass * D : k_base, valid);
      cp_async_16(v_dst + i * kRowsPerPass * row_elems<D>(), valid ? v_src + i * kRowsPerPass * D : v_base, valid);
    }
  }
};

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

// Where a recorded row's scores go: head g's score of position j at raw[g * stride + j]
// for g < group; raw is null for rows that are not recorded (CTA-uniform).
struct ScoreSink {
  float* raw;
  int64_t stride;
  int group;
};

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

// Where the queries of one CTA's group start: G heads of D elements, contiguous.
template <class T, int D>
__device__ __forceinline__ const T* group_queries(const SparseDecodeParams& p, int row, int kvh) {
  return static_cast<const T*>(p.q) + int64_t(row) * p.q_row_stride + int64_t(kvh) * (p.q_heads / p.kv_heads) * D;
}

// fp32 FMAs on CUDA cores, for groups of up to G heads. Lane t owns token t in the scores;
// in the PV product lane l owns dims [(j * 32 + l) * kVec, + kVec) of each slot j.
template <class T, int D, int G>
struct ScalarMath {
  static constexpr int kHeads = G;  // state rows per warp in the merge
  static constexpr int kVec = D % 128 == 0 ? 4 : 2;
  static constexpr int kSlots = (D + 32 * kVec - 1) / (32 * kVec);
  static constexpr int kDimsPerLane = kSlots * kVec;

  const float* q_s;  // [G][D] fp32 in shared memory, pre-scaled to log2 units, zero past the group
  float m[G], d[G], o[G][kDimsPerLane];

  // All threads of the CTA fill q_s; the caller syncs before the first tile.
  __device__ __forceinline__ void init(const SparseDecodeParams& p, int row, int kvh, float* q_shared, int lane) {
    const int group = p.q_heads / p.kv_heads;
    const float q_scale = p.scale * 1.4426950408889634f;
    const T* q = group_queries<T, D>(p, row, kvh);
    for (int e = threadIdx.x; e < G * D; e += blockDim.x) q_shared[e] = e < group * D ? to_float(q[e]) * q_scale : 0.f;
    q_s = q_shared;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      m[g] = -INFINITY;
      d[g] = 0.f;
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) o[g][j] = 0.f;
    }
  }

  __device__ __forceinline__ void tile(const T* k_tile, const T* v_tile, Item item, const ScoreSink& sink,
                                       int lane) {
    const uint32_t mask = item.mask;
    const bool live = (mask >> lane) & 1u;
    // Scores: lane t's token against every query head (rows past the group are zero).
    float s[G];
#pragma unroll
    for (int g = 0; g < G; ++g) s[g] = 0.f;
    const T* k_row = k_tile + lane * row_elems<D>();
    // Unrolled by 4, or fully where 4 does not divide the chunks (a remainder loop there
    // spilled registers at D = 48).
    constexpr int kScoreUnroll = (D / 8) % 4 == 0 ? 4 : D / 8;
#pragma unroll kScoreUnroll
    for (int c = 0; c < D; c += 8) {
      float k8[8];
      load8(k_row + c, k8);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float4 qa = *reinterpret_cast<const float4*>(q_s + g * D + c);
        const float4 qb = *reinterpret_cast<const float4*>(q_s + g * D + c + 4);
        s[g] += qa.x * k8[0] + qa.y * k8[1] + qa.z * k8[2] + qa.w * k8[3] + qb.x * k8[4] + qb.y * k8[5] +
                qb.z * k8[6] + qb.w * k8[7];
      }
    }
    if (sink.raw && live) {
#pragma unroll
      for (int g = 0; g < G; ++g)
        if (g < sink.group) sink.raw[g * sink.stride + item.start + lane] = s[g];
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
    // o += p . V; p of token t comes from lane t by shuffle.
#pragma unroll 4
    for (int t = 0; t < kDecodeTileTokens; ++t) {
      float v[kSlots][kVec];
#pragma unroll
      for (int j = 0; j < kSlots; ++j) {
        const int dim = (j * 32 + lane) * kVec;
        if (dim < D) {
          load_n<T, kVec>(v_tile + t * row_elems<D>() + dim, v[j]);
        } else {
#pragma unroll
          for (int e = 0; e < kVec; ++e) v[j][e] = 0.f;
        }
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float pt = __shfl_sync(0xffffffffu, prob[g], t);
#pragma unroll
        for (int j = 0; j < kSlots; ++j)
#pragma unroll
          for (int e = 0; e < kVec; ++e) o[g][j * kVec + e] += pt * v[j][e];
      }
    }
  }

  // This warp's state into red_o [warps][G][D], red_m / red_d [warps][G].
  __device__ __forceinline__ void store(float* red_o, float* red_m, float* red_d, int warp, int lane) const {
#pragma unroll
    for (int g = 0; g < G; ++g) {
#pragma unroll
      for (int j = 0; j < kSlots; ++j) {
        const int dim = (j * 32 + lane) * kVec;
        if (dim < D) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) red_o[(warp * G + g) * D + dim + e] = o[g][j * kVec + e];
        }
      }
      if (lane == 0) {
        red_m[warp * G + g] = m[g];
        red_d[warp * G + g] = d[g];
      }
    }
  }
};

// Tensor cores: S[heads, 32 tokens] = Q K^T and O[heads, D] += P V with mma.m16n8k16, the
// group's heads as the M rows (rows 8-15 zero). Q stays in registers as A fragments; P
// goes from the S accumulators to A fragments without shared memory (FlashAttention-2's
// register reuse). Lane (g, t) = (lane / 4, lane % 4) owns head g's state: scores of tokens
// n * 8 + 2t, +1 and output dims n * 8 + 2t, +1.
template <class T, int D>
struct MmaMath {
  static constexpr int kHeads = kDecodeMaxGroup;  // state rows per warp in the merge
  static constexpr int kSteps = D / 16;           // k-steps of Q K^T
  static constexpr int kDimTiles = D / 8;         // n-tiles of P V
  static_assert(D % 16 == 0 && kDimTiles % 2 == 0, "ldmatrix.x4 loads two n-tiles at a time");

  uint32_t qa[kSteps][2];  // a0 and a2 of each k-step (a1 = a3 = 0)
  float o[kDimTiles][2];
  float m, d;              // head g's running max (quad-uniform) and this lane's part of the sum
  float qk_scale;

  __device__ __forceinline__ void init(const SparseDecodeParams& p, int row, int kvh, float* /*q_shared*/,
                                       int lane) {
    const int g = lane / 4, t = lane % 4;
    const int group = p.q_heads / p.kv_heads;
    const T* q = group_queries<T, D>(p, row, kvh) + g * D;
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      qa[k][0] = g < group ? *reinterpret_cast<const uint32_t*>(q + k * 16 + 2 * t) : 0u;
      qa[k][1] = g < group ? *reinterpret_cast<const uint32_t*>(q + k * 16 + 8 + 2 * t) : 0u;
    }
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) o[n][0] = o[n][1] = 0.f;
    m = -INFINITY;
    d = 0.f;
    qk_scale = p.scale * 1.4426950408889634f;
  }

  __device__ __forceinline__ void tile(const T* k_tile, const T* v_tile, Item item, const ScoreSink& sink,
                                       int lane) {
    const uint32_t mask = item.mask;
    const int t = lane % 4;
    // S: n-tile n holds tokens n * 8 .. n * 8 + 7; one ldmatrix.x4 gives B for two n-tiles.
    float s[4][2];
#pragma unroll
    for (int np = 0; np < 2; ++np) {
      float acc0[2] = {0.f, 0.f}, acc1[2] = {0.f, 0.f};
      const T* row = k_tile + ((2 * np + (lane >> 4)) * 8 + (lane & 7)) * row_elems<D>() + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int k = 0; k < kSteps; ++k) {
        uint32_t b[4];
        ldmatrix_x4(b, row + k * 16);
        mma_m16n8k16_top<T>(acc0, qa[k][0], qa[k][1], b[0], b[1]);
        mma_m16n8k16_top<T>(acc1, qa[k][0], qa[k][1], b[2], b[3]);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        s[2 * np][j] = acc0[j] * qk_scale;
        s[2 * np + 1][j] = acc1[j] * qk_scale;
      }
    }
    // Online softmax over the quad's 32 tokens (4 lanes x 8 values).
    float mx = -INFINITY;
#pragma unroll
    for (int n = 0; n < 4; ++n)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const bool live = (mask >> (n * 8 + 2 * t + j)) & 1u;
        s[n][j] = live ? s[n][j] : -INFINITY;
        mx = fmaxf(mx, s[n][j]);
      }
    if (sink.raw && lane / 4 < sink.group) {  // head g = lane / 4 holds these 8 tokens' scores
      float* raw = sink.raw + (lane / 4) * sink.stride + item.start;
#pragma unroll
      for (int n = 0; n < 4; ++n)
#pragma unroll
        for (int j = 0; j < 2; ++j)
          if ((mask >> (n * 8 + 2 * t + j)) & 1u) raw[n * 8 + 2 * t + j] = s[n][j];
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m, mx);  // finite: the item has a live token
    const float alpha = exp2f(m - m_new);
    uint32_t pa[4];  // P as A fragments: pa[n] = tokens n * 8 + 2t, +1 of head g
    float sum = 0.f;
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      float r0, r1;  // sum what the PV product will use (P rounded to T)
      pa[n] = pack2<T>(exp2f(s[n][0] - m_new), exp2f(s[n][1] - m_new), r0, r1);
      sum += r0 + r1;
    }
    d = d * alpha + sum;
    m = m_new;
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) {
      o[n][0] *= alpha;
      o[n][1] *= alpha;
    }
    // O += P V: k-step kk covers tokens kk * 16 .. + 15 (a0 = n-tile 2kk, a2 = n-tile
    // 2kk + 1); ldmatrix.trans gives B (tokens x dims) for two dim tiles.
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      const T* row = v_tile + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * row_elems<D>() + (lane >> 4) * 8;
#pragma unroll
      for (int n = 0; n < kDimTiles; n += 2) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, row + n * 8);
        mma_m16n8k16_top<T>(o[n], pa[2 * kk], pa[2 * kk + 1], b[0], b[1]);
        mma_m16n8k16_top<T>(o[n + 1], pa[2 * kk], pa[2 * kk + 1], b[2], b[3]);
      }
    }
  }

  // This warp's state into red_o [warps][8][D], red_m / red_d [warps][8].
  __device__ __forceinline__ void store(float* red_o, float* red_m, float* red_d, int warp, int lane) const {
    const int g = lane / 4, t = lane % 4;
    float d_all = d + __shfl_xor_sync(0xffffffffu, d, 1);
    d_all += __shfl_xor_sync(0xffffffffu, d_all, 2);
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) {
      red_o[(warp * kHeads + g) * D + n * 8 + 2 * t] = o[n][0];
      red_o[(warp * kHeads + g) * D + n * 8 + 2 * t + 1] = o[n][1];
    }
    if (t == 0) {
      red_m[warp * kHeads + g] = m;
      red_d[warp * kHeads + g] = d_all;
    }
  }
};

// The minimum-blocks hint of 1 lets ptxas use the registers it needs (without it, it
// capped some instantiations at 72-96 and spilled); shared memory bounds residency first.
template <class T, int D, class Math>
__global__ void __launch_bounds__(kDecodeMaxWarps * 32, 1)
    sparse_decode_kernel(const __grid_constant__ SparseDecodeParams p) {
  constexpr int H = Math::kHeads;
  static_assert(H * D * 4 + 2 * H * 4 <= kDecodeStages * 2 * kDecodeTileTokens * row_elems<D>() * int(sizeof(T)),
                "the warps' merge area fits in their stage area");
  const int warps = int(blockDim.x) / 32;
  const DecodeSmemLayout layout = decode_smem_layout(D, int(sizeof(T)), warps);
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* stages = reinterpret_cast<T*>(smem_raw);                         // [warps][2][K, V][32][D + pad]
  float* q_s = reinterpret_cast<float*>(smem_raw + layout.q);         // [8][D] (ScalarMath)
  Item* lists = reinterpret_cast<Item*>(smem_raw + layout.items);     // [warps][32]

  const int idx = blockIdx.x / p.kv_heads;  // which of the launch's rows
  const int kvh = blockIdx.x % p.kv_heads;
  const int row = p.row_ids ? p.row_ids[idx] : idx;
  const int split = blockIdx.y;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int group = p.q_heads / p.kv_heads;

  const RowWork work = row_work(p, row, span_row_of(p, row, kvh));
  const int record = p.mass_record ? p.mass_record[row] : -1;
  const ScoreSink sink{
      record >= 0 ? p.raw_scores + (int64_t(record) * p.q_heads + int64_t(kvh) * group) * p.raw_stride : nullptr,
      p.raw_stride, group};
  const int per_split = (work.total_items + p.splits - 1) / p.splits;
  const int begin = split * per_split;
  const int end = min(work.total_items, begin + per_split);

  const int64_t base = int64_t(p.slot[row]) * p.cache_slot_stride + int64_t(kvh) * p.cache_head_stride;
  const T* k_base = static_cast<const T*>(p.k_cache) + base;
  const T* v_base = static_cast<const T*>(p.v_cache) + base;
  T* my_stages = stages + size_t(warp) * kDecodeStages * layout.stage_elems;
  LiveItems items{begin + warp, warps, end, 0, 0, lists + warp * 32};
  const TileCopy<T, D> copy(lane);

  // The first tile's copy goes out before the queries are read: the prologue's loads overlap.
  Item cur{0, 0u};
  bool have = items.pop(p, work, lane, cur);
  if (have) copy.issue(k_base, v_base, cur, my_stages);
  cp_async_commit();

  Math math;
  math.init(p, row, kvh, q_s, lane);
  __syncthreads();  // q_s (ScalarMath) is complete

  int stage = 0;
  while (have) {
    Item nxt{0, 0u};
    const bool have_next = items.pop(p, work, lane, nxt);
    if (have_next) copy.issue(k_base, v_base, nxt, my_stages + (stage ^ 1) * layout.stage_elems);
    cp_async_commit();  // maybe empty: wait_group counts stay in step with tiles
    cp_async_wait<1>();
    __syncwarp();
    const T* k_tile = my_stages + stage * layout.stage_elems;
    math.tile(k_tile, k_tile + kDecodeTileTokens * row_elems<D>(), cur, sink, lane);
    __syncwarp();  // the stage is refilled two items later
    stage ^= 1;
    cur = nxt;
    have = have_next;
  }
  cp_async_wait<0>();  // only empty groups can remain; drain before reusing shared memory
  __syncthreads();

  // Merge the warps' states through shared memory (the stage area is free now).
  float* red_o = reinterpret_cast<float*>(smem_raw);  // [warps][H][D]
  float* red_m = red_o + warps * H * D;                // [warps][H]
  float* red_d = red_m + warps * H;                    // [warps][H]
  math.store(red_o, red_m, red_d, warp, lane);
  __syncthreads();

  for (int e = threadIdx.x; e < group * D; e += blockDim.x) {
    const int g = e / D;
    const int dim = e % D;
    float m_all = -INFINITY;
    for (int w = 0; w < warps; ++w) m_all = fmaxf(m_all, red_m[w * H + g]);
    float d_all = 0.f, o_all = 0.f;
    if (m_all != -INFINITY) {  // an empty state (m = -inf, d = 0) contributes nothing
      for (int w = 0; w < warps; ++w) {
        const float scale = exp2f(red_m[w * H + g] - m_all);
        d_all += red_d[w * H + g] * scale;
        o_all += red_o[(w * H + g) * D + dim] * scale;
      }
    }
    const float o_norm = d_all > 0.f ? o_all / d_all : 0.f;
    const int h = kvh * group + g;
    if (p.splits == 1) {
      T* out = static_cast<T*>(p.out) + int64_t(row) * p.out_row_stride + int64_t(h) * D;
      out[dim] = from_float<T>(o_norm);
      if (record >= 0 && dim == 0)
        p.score_lse[int64_t(record) * p.q_heads + h] = d_all > 0.f ? m_all + log2f(d_all) : -INFINITY;
    } else {
      const int64_t state = (int64_t(idx) * p.q_heads + h) * p.splits + split;
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
  const int idx = blockIdx.x / p.q_heads;
  const int h = blockIdx.x % p.q_heads;
  const int row = p.row_ids ? p.row_ids[idx] : idx;
  const int64_t first = (int64_t(idx) * p.q_heads + h) * p.splits;
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
    const int record = p.mass_record ? p.mass_record[row] : -1;
    if (record >= 0 && dim == 0)
      p.score_lse[int64_t(record) * p.q_heads + h] = w_sum > 0.f ? m_all + log2f(w_sum) : -INFINITY;
  }
}

// Raise the kernel's dynamic shared-memory limit (and prefer the largest carveout, so
// that the CTAs the occupancy choice counts on fit) once per device.
template <class T, int D, class Math>
void configure(size_t bytes) {
  static cuda::PerDeviceSetting setting;
  setting.raise(cuda::current_device(), int(bytes), [](int value) {
    SSPAN_CUDA_CHECK(cudaFuncSetAttribute(sparse_decode_kernel<T, D, Math>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, value));
    SSPAN_CUDA_CHECK(cudaFuncSetAttribute(sparse_decode_kernel<T, D, Math>,
                                          cudaFuncAttributePreferredSharedMemoryCarveout,
                                          int(cudaSharedmemCarveoutMaxShared)));
  });
}

template <class T, int D, class Math>
void launch_kernels(const SparseDecodeParams& p, cudaStream_t stream) {
  const size_t bytes = decode_smem_layout(D, int(sizeof(T)), p.warps).bytes;
  configure<T, D, Math>(bytes);
  const dim3 grid(unsigned(p.rows) * unsigned(p.kv_heads), unsigned(p.splits));
  sparse_decode_kernel<T, D, Math><<<grid, unsigned(p.warps) * 32, bytes, stream>>>(p);
  SSPAN_CUDA_CHECK_LAUNCH("sparse_decode_kernel");
  if (p.splits > 1) {
    sparse_decode_merge_kernel<T><<<unsigned(p.rows) * unsigned(p.q_heads), unsigned(D), 0, stream>>>(p);
    SSPAN_CUDA_CHECK_LAUNCH("sparse_decode_merge_kernel");
  }
}

template <class T, int D, class Math>
int ctas_per_sm(int warps) {
  const size_t bytes = decode_smem_layout(D, int(sizeof(T)), warps).bytes;
  configure<T, D, Math>(bytes);
  int n = 0;
  SSPAN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, sparse_decode_kernel<T, D, Math>, warps * 32,
                                                                 bytes));
  return n;
}

// Calls f(std::integral_constant<int, D>) for the runtime head dim (one of cuda::kHeadDims).
template <class F>
void with_head_dim(int head_dim, F&& f) {
  switch (head_dim) {
    case 32: return f(std::integral_constant<int, 32>{});
    case 48: return f(std::integral_constant<int, 48>{});
    case 64: return f(std::integral_constant<int, 64>{});
    case 80: return f(std::integral_constant<int, 80>{});
    case 96: return f(std::integral_constant<int, 96>{});
    case 128: return f(std::integral_constant<int, 128>{});
  }
  cuda::throw_error("sparse decode attention: head_dim " + std::to_string(head_dim) + " is not instantiated");
}

// Picks the instantiation: head dim, then the math, then (ScalarMath) the group size
// rounded up to 1, 2, 4 or 8.
template <class T>
void launch_for_type(const SparseDecodeParams& p, cudaStream_t stream) {
  const int group = p.q_heads / p.kv_heads;
  with_head_dim(p.head_dim, [&](auto dim_tag) {
    constexpr int D = decltype(dim_tag)::value;
    if (p.math == DecodeMath::TensorCore) return launch_kernels<T, D, MmaMath<T, D>>(p, stream);
    if (group == 1) launch_kernels<T, D, ScalarMath<T, D, 1>>(p, stream);
    else if (group == 2) launch_kernels<T, D, ScalarMath<T, D, 2>>(p, stream);
    else if (group <= 4) launch_kernels<T, D, ScalarMath<T, D, 4>>(p, stream);
    else launch_kernels<T, D, ScalarMath<T, D, 8>>(p, stream);
  });
}

template <class T>
int ctas_per_sm_for_type(int head_dim, int warps) {
  int n = 0;
  with_head_dim(head_dim, [&](auto dim_tag) {
    constexpr int D = decltype(dim_tag)::value;
    n = std::min({ctas_per_sm<T, D, MmaMath<T, D>>(warps), ctas_per_sm<T, D, ScalarMath<T, D, 1>>(warps),
                  ctas_per_sm<T, D, ScalarMath<T, D, 2>>(warps), ctas_per_sm<T, D, ScalarMath<T, D, 4>>(warps),
                  ctas_per_sm<T, D, ScalarMath<T, D, 8>>(warps)});
  });
  return n;
}

}  // namespace sspan::kernels::decode

namespace sspan::kernels {
void launch_sparse_decode_f16(const SparseDecodeParams& p, cudaStream_t stream);
void launch_sparse_decode_bf16(const SparseDecodeParams& p, cudaStream_t stream);
int sparse_decode_ctas_per_sm_f16(int head_dim, int warps);
int sparse_decode_ctas_per_sm_bf16(int head_dim, int warps);
}  // namespace sspan::kernels
