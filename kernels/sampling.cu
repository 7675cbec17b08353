// Device token selection (see sampling.h). One CTA per row. The top-k and top-p cuts are
// exact thresholds found by a 32-step bitwise search over the values' ordered bit
// patterns (each step one counting or summing pass over the row), so nothing is sorted.
#include "sampling.h"

#include <cfloat>
#include <climits>
#include <string>

#include "cuda/cuda_check.h"

namespace sspan::kernels {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

// Float -> unsigned key with the same order (negative values flipped).
__device__ __forceinline__ uint32_t ordered_key(float x) {
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

template <class T, class Op>
__device__ T block_reduce(T v, Op op, T* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  T r = scratch[0];
  for (int i = 1; i < kWarps; ++i) r = op(r, scratch[i]);
  __syncthreads();  // scratch is reused by the next reduction
  return r;
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumF {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct SumU {
  __device__ unsigned operator()(unsigned a, unsigned b) const { return a + b; }
};
// (value, index) packed so that the larger value wins and, on ties, the smaller index.
struct ArgmaxOp {
  __device__ unsigned long long operator()(unsigned long long a, unsigned long long b) const { return a > b ? a : b; }
};

__device__ __forceinline__ unsigned long long pack_arg(float x, int i) {
  return (static_cast<unsigned long long>(ordered_key(x)) << 32) | (0xffffffffu - uint32_t(i));
}

__device__ __forceinline__ bool finite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }

__global__ void argmax_kernel(const float* logits, int vocab, int32_t* out) {
  __shared__ unsigned long long scratch[kWarps];
  const float* z = logits + int64_t(blockIdx.x) * vocab;
  unsigned long long best = 0;
  bool bad = false;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    best = ArgmaxOp{}(best, pack_arg(z[i], i));
    bad |= !finite(z[i]);
  }
  if (__syncthreads_or(bad)) {  // block-uniform
    if (threadIdx.x == 0) out[blockIdx.x] = kNonFiniteRow;
    return;
  }
  best = block_reduce(best, ArgmaxOp{}, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = int32_t(0xffffffffu - uint32_t(best & 0xffffffffu));
}

__global__ void sample_kernel(const __grid_constant__ SamplingParams p) {
  __shared__ float fscratch[kWarps];
  __shared__ unsigned uscratch[kWarps];
  __shared__ float chunk_sums[kThreads];
  __shared__ int first_hit;   // smallest index whose running sum passes the goal
  __shared__ int last_index;  // largest kept index (the fallback)
  const int V = p.vocab;
  const float* z = p.logits + int64_t(blockIdx.x) * V;
  const float inv_t = 1.f / p.temperature;

  float mx = -FLT_MAX;
  bool bad = false;
  for (int i = threadIdx.x; i < V; i += kThreads) {
    mx = fmaxf(mx, z[i]);
    bad |= !finite(z[i]);
  }
  if (__syncthreads_or(bad)) {  // block-uniform: NaN or an infinity anywhere in the row
    if (threadIdx.x == 0) p.out[blockIdx.x] = kNonFiniteRow;
    return;
  }
  mx = block_reduce(mx, MaxOp{}, fscratch);

  // Top-k: the largest key v with #{key >= v} >= k is the k-th largest key.
  uint32_t kth = 0;
  if (p.top_k > 0 && p.top_k < V) {
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t cand = kth | (1u << bit);
      unsigned count = 0;
      for (int i = threadIdx.x; i < V; i += kThreads) count += ordered_key(z[i]) >= cand;
      if (block_reduce(count, SumU{}, uscratch) >= unsigned(p.top_k)) kth = cand;
    }
  }
  auto weight = [&](int i) { return ordered_key(z[i]) >= kth ? __expf((z[i] - mx) * inv_t) : 0.f; };

  // Top-p: the largest tau (positive floats order like their bits) whose kept mass
  // reaches top_p of the top-k mass.
  uint32_t tau = 0;
  if (p.top_p < 1.f) {
    float total = 0.f;
    for (int i = threadIdx.x; i < V; i += kThreads) total += weight(i);
    const float target = p.top_p * block_reduce(total, SumF{}, fscratch);
    for (int bit = 30; bit >= 0; --bit) {
      const uint32_t cand = tau | (1u << bit);
      float mass = 0.f;
      for (int i = threadIdx.x; i < V; i += kThreads) {
        const float w = weight(i);
        mass += __float_as_uint(w) >= cand ? w : 0.f;
      }
      if (block_reduce(mass, SumF{}, fscratch) >= target) tau = cand;
    }
  }
  auto kept = [&](int i) {
    const float w = weight(i);
    return w > 0.f && __float_as_uint(w) >= tau ? w : 0.f;
  };

  // Inverse CDF in index order: each thread owns one contiguous chunk of the row.
  const int chunk = (V + kThreads - 1) / kThreads;
  const int begin = min(V, int(threadIdx.x) * chunk), end = min(V, begin + chunk);
  float mine = 0.f;
  for (int i = begin; i < end; ++i) mine += kept(i);
  chunk_sums[threadIdx.x] = mine;
  if (threadIdx.x == 0) {
    first_hit = INT_MAX;
    last_index = -1;
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // exclusive scan over 1024 chunk sums; cheap next to the passes above
    float run = 0.f;
    for (int t = 0; t < kThreads; ++t) {
      const float s = chunk_sums[t];
      chunk_sums[t] = run;
      run += s;
    }
    fscratch[0] = run;
  }
  __syncthreads();
  const float goal = p.uniforms[blockIdx.x] * fscratch[0];
  float run = chunk_sums[threadIdx.x];
  int last_kept = -1;  // exact whenever no thread finds the goal (every chunk scanned in full)
  int found = -1;
  for (int i = begin; i < end && found < 0; ++i) {
    const float w = kept(i);
    if (w > 0.f) {
      last_kept = i;
      run += w;
      if (run > goal) found = i;
    }
  }
  if (found >= 0) atomicMin(&first_hit, found);
  if (last_kept >= 0) atomicMax(&last_index, last_kept);
  __syncthreads();
  // Rounding can leave the goal at or past the total: then the last kept token wins.
  if (threadIdx.x == 0) p.out[blockIdx.x] = first_hit != INT_MAX ? first_hit : last_index;
}

}  // namespace

void launch_argmax(const float* logits, int rows, int vocab, int32_t* out, cudaStream_t stream) {
  if (rows == 0) return;
  if (vocab <= 0) cuda::throw_error("argmax: vocabulary size must be positive");
  argmax_kernel<<<unsigned(rows), kThreads, 0, stream>>>(logits, vocab, out);
  SSPAN_CUDA_CHECK_LAUNCH("argmax_kernel");
}

void launch_sample(const SamplingParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  if (p.vocab <= 0) cuda::throw_error("sample: vocabulary size must be positive");
  if (!(p.top_p > 0.f))
    cuda::throw_error("sample: top_p must be > 0 (1 keeps every token), got " + std::to_string(p.top_p));
  // A temperature whose reciprocal overflows would turn every scaled logit into inf or NaN.
  if (!(p.temperature > 0.f) || !(1.f / p.temperature < FLT_MAX))
    return launch_argmax(p.logits, p.rows, p.vocab, p.out, stream);
  sample_kernel<<<unsigned(p.rows), kThreads, 0, stream>>>(p);
  SSPAN_CUDA_CHECK_LAUNCH("sample_kernel");
}

}  // namespace sspan::kernels
