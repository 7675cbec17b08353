// The attention record's kernels (attention_record.h): the recorded rows' attention mass
// from the decode kernel's kept scores, and the mean query of the query rows.
#include "attention_record.h"

#include <cmath>
#include <string>

#include "cuda/cuda_check.h"
#include "dtype_traits.cuh"

namespace sspan::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxKeyBlocks = 64;  // grid height: CTAs per (record, KV head)

// Grid (records * Hkv, key blocks); keys of one (record, KV head) strided over the grid's
// height. A head with no attended position (lse = -inf) adds nothing.
__global__ void attention_mass_kernel(const __grid_constant__ AttentionMassParams p) {
  const int record = int(blockIdx.x) / p.kv_heads;
  const int kvh = int(blockIdx.x) % p.kv_heads;
  const int group = p.q_heads / p.kv_heads;
  const int keys = p.pos[p.mass_rows[record]] + 1;
  const float* raw = p.raw_scores + (int64_t(record) * p.q_heads + int64_t(kvh) * group) * p.raw_stride;
  const float* lse = p.score_lse + int64_t(record) * p.q_heads + int64_t(kvh) * group;
  float* out = p.mass + ((int64_t(record) * p.layers + p.layer) * p.kv_heads + kvh) * p.mass_stride;
  for (int j = int(blockIdx.y) * blockDim.x + threadIdx.x; j < keys; j += int(gridDim.y) * blockDim.x) {
    float sum = 0.f;
    for (int g = 0; g < group; ++g)
      if (lse[g] != -INFINITY) sum += exp2f(raw[g * p.raw_stride + j] - lse[g]);
    out[j] = sum;
  }
}

// A key of the selection: larger is heavier. The mass's bits made order-preserving as an
// unsigned integer, then the position reversed: of equal masses the earlier key is larger.
__device__ __forceinline__ uint64_t select_key(float mass, int j) {
  uint32_t bits = __float_as_uint(mass);
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (uint64_t(bits) << 32) | uint64_t(0xFFFFFFFFu - uint32_t(j));
}

// Radix select of the k-th largest key, one byte per pass from the top: each pass counts
// the candidates (keys equal to the prefix found so far) per next byte, and the byte that
// holds the k-th is appended to the prefix. Keys are distinct, so after 8 passes exactly k
// keys are >= the prefix; they are written in position order (a block-wide ordered scan).
__global__ void attention_top_k_kernel(const __grid_constant__ AttentionTopKParams p) {
  constexpr int kWarps = kThreads / 32;
  __shared__ unsigned hist[256];
  __shared__ uint64_t chosen_prefix;
  __shared__ int chosen_rank;
  __shared__ int warp_kept[kWarps];
  const float* mass = p.mass + (int64_t(p.record) * p.layers * p.kv_heads + blockIdx.x) * p.mass_stride;
  int32_t* out = p.out + int64_t(blockIdx.x) * p.k;
  uint64_t prefix = 0, prefix_mask = 0;
  int rank = p.k;  // of the wanted key among the candidates, from the heaviest (1-based)
  if (p.k < p.keys) {
    for (int shift = 56; shift >= 0; shift -= 8) {
      for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
      __syncthreads();
      for (int j = threadIdx.x; j < p.keys; j += blockDim.x) {
        const uint64_t key = select_key(mass[j], j);
        if ((key & prefix_mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xFFu], 1u);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        int above = 0, b = 255;  // candidates in heavier bytes
        for (; b > 0 && above + int(hist[b]) < rank; --b) above += int(hist[b]);
        chosen_prefix = prefix | (uint64_t(b) << shift);
        chosen_rank = rank - above;
      }
      __syncthreads();
      prefix = chosen_prefix;
      rank = chosen_rank;
      prefix_mask |= uint64_t(0xFFu) << shift;
      __syncthreads();  // every thread has read the choice before the next pass clears hist
    }
  }
  const uint64_t threshold = p.k < p.keys ? prefix : 0;  // k >= keys: every key
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int written = 0;  // block-uniform
  for (int first = 0; first < p.keys; first += blockDim.x) {
    const int j = first + threadIdx.x;
    const bool keep = j < p.keys && select_key(mass[j], j) >= threshold;
    const unsigned ballot = __ballot_sync(0xffffffffu, keep);
    if (lane == 0) warp_kept[warp] = __popc(ballot);
    __syncthreads();
    int at = written, total = 0;
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) at += warp_kept[w];
      total += warp_kept[w];
    }
    if (keep) out[at + __popc(ballot & ((1u << lane) - 1u))] = j;
    written += total;
    __syncthreads();  // warp_kept is rewritten by the next chunk
  }
}

// One CTA per query row, one thread per dim.
template <class T>
__global__ void query_mean_kernel(const T* q, int64_t q_row_stride, const int32_t* rows, int q_heads, int head_dim,
                                  float* out) {
  const T* row = q + int64_t(rows[blockIdx.x]) * q_row_stride;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.f;
    for (int h = 0; h < q_heads; ++h) acc += to_float(row[int64_t(h) * head_dim + d]) / float(q_heads);
    out[int64_t(blockIdx.x) * head_dim + d] = acc;
  }
}

}  // namespace

void launch_attention_mass(const AttentionMassParams& p, cudaStream_t stream) {
  if (p.records == 0) return;
  if (!(p.records > 0 && p.kv_heads > 0 && p.q_heads % p.kv_heads == 0 && p.layer >= 0 && p.layer < p.layers &&
        p.max_keys > 0 && p.raw_stride >= p.max_keys && p.mass_stride >= p.max_keys && p.mass_rows && p.pos &&
        p.raw_scores && p.score_lse && p.mass))
    cuda::throw_error("attention mass: bad parameters (" + std::to_string(p.records) + " records, layer " +
                      std::to_string(p.layer) + " of " + std::to_string(p.layers) + ", " + std::to_string(p.q_heads) +
                      " query heads on " + std::to_string(p.kv_heads) + " KV heads, " + std::to_string(p.max_keys) +
                      " keys)");
  const int blocks = (p.max_keys + kThreads - 1) / kThreads;
  const dim3 grid(unsigned(p.records) * unsigned(p.kv_heads), unsigned(blocks < kMaxKeyBlocks ? blocks : kMaxKeyBlocks));
  attention_mass_kernel<<<grid, kThreads, 0, stream>>>(p);
  SSPAN_CUDA_CHECK_LAUNCH("attention_mass_kernel");
}

void launch_attention_top_k(const AttentionTopKParams& p, cudaStream_t stream) {
  if (!(p.mass && p.out && p.layers > 0 && p.kv_heads > 0 && p.record >= 0 && p.keys >= 1 && p.k >= 1 &&
        p.k <= p.keys && p.mass_stride >= p.keys))
    cuda::throw_error("attention top-k: bad parameters (k " + std::to_string(p.k) + " of " + std::to_string(p.keys) +
                      " keys, record " + std::to_string(p.record) + ", " + std::to_string(p.layers) + " layers x " +
                      std::to_string(p.kv_heads) + " KV heads)");
  attention_top_k_kernel<<<unsigned(p.layers) * unsigned(p.kv_heads), kThreads, 0, stream>>>(p);
  SSPAN_CUDA_CHECK_LAUNCH("attention_top_k_kernel");
}

void launch_query_mean(DType dtype, const void* q, int64_t q_row_stride, const int32_t* rows, int n_rows,
                       int q_heads, int head_dim, float* out, cudaStream_t stream) {
  if (n_rows == 0) return;
  if (n_rows < 0 || q_heads <= 0 || head_dim <= 0 || q_row_stride < int64_t(q_heads) * head_dim)
    cuda::throw_error("query mean: " + std::to_string(n_rows) + " rows of " + std::to_string(q_heads) + " heads of " +
                      std::to_string(head_dim));
  dispatch_half_types(dtype, "query mean", [&](auto tag) {
    using T = decltype(tag);
    query_mean_kernel<T><<<unsigned(n_rows), unsigned(head_dim < kThreads ? head_dim : kThreads), 0, stream>>>(
        static_cast<const T*>(q), q_row_stride, rows, q_heads, head_dim, out);
    SSPAN_CUDA_CHECK_LAUNCH("query_mean_kernel");
  });
}

}  // namespace sspan::kernels
