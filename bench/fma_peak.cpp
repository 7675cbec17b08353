// The CPU's fp32 multiply-add roof: every thread runs independent chains of FMAs on
// registers (no memory traffic), in the vector width the matmul kernels use. A matmul that
// is FLOP-bound cannot beat this figure, whatever engine runs it, so the matmul bench
// quotes its GFLOP/s as a share of it (as the attention bench quotes bandwidth).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12 warns inside its own avx512fintrin.h about _mm*_undefined_*() (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "bench.h"
#include "cpu/thread_pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sspan::bench {
namespace {

// Independent accumulators per thread: more than FMA latency x FMA ports on any current
// core (4-5 cycles x 2 ports), so the loop runs at the ports' throughput.
constexpr int kChains = 12;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) double fma_chains_avx512(int64_t iters, float seed) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(seed + float(c));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  float sum = 0;
  for (int c = 0; c < kChains; ++c) sum += _mm512_reduce_add_ps(acc[c]);
  return sum;
}

__attribute__((target("avx2,fma"))) double fma_chains_avx2(int64_t iters, float seed) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(seed + float(c));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  alignas(32) float lanes[8];
  float sum = 0;
  for (int c = 0; c < kChains; ++c) {
    _mm256_store_ps(lanes, acc[c]);
    for (float v : lanes) sum += v;
  }
  return sum;
}
#endif

double fma_chains_scalar(int64_t iters, float seed) {
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = seed + float(c);
  for (int64_t i = 0; i < iters; ++i)
    for (float& v : acc) v = v * 0.999999f + 1e-6f;
  double sum = 0;
  for (float v : acc) sum += v;
  return sum;
}

}  // namespace

double host_fma_peak_gflops(const std::string& isa, int threads) {
  if (threads > 0) cpu::set_num_threads(threads);
  int lanes = 1;
  double (*chains)(int64_t, float) = fma_chains_scalar;
#if defined(__x86_64__)
  if (isa == "avx512") lanes = 16, chains = fma_chains_avx512;
  else if (isa == "avx2") lanes = 8, chains = fma_chains_avx2;
#endif
  // One task per thread of ~20 ms at a few GFLOP/s per core; the best of several passes
  // (a pass where a thread was descheduled only lowers the figure).
  const int64_t parts = cpu::num_threads();
  const int64_t iters = int64_t(4) << 20 >> (lanes >= 8 ? 0 : 2);
  std::vector<double> sink(static_cast<size_t>(parts));
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu::parallel_for(parts, [&](int64_t p, int) { sink[size_t(p)] = chains(iters, float(p)); });
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops = 2.0 * double(parts) * double(iters) * kChains * lanes;
    best = std::max(best, flops / sec / 1e9);
  }
  // The sums are finite for any run; reading them keeps the loops from being removed.
  for (double s : sink)
    if (!(s == s)) return 0;
  return best;
}

}  // namespace sspan::bench
