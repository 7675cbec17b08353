// y[n, O] = x[n, K] . W[O, K]^T on the CPU: the matmul split into blocks for the threads,
// each block computed by the register-tiled kernels of matmul_kernels.h.
//
// A task is a block of up to kRowBlock x-rows by a block of weight rows sized to stay in
// L2 (kWeightBlockBytes): the weights come from memory once per task and are reused from
// L2 by every x tile. Batch-1 decode is the same code with one x row: memory-bound, each
// weight read once, every thread streaming its own blocks.
#include <algorithm>
#include <cstddef>

#include "cpu/dot.h"
#include "cpu/matmul_kernels.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace sspan::cpu {
namespace {

constexpr int64_t kWeightBlockBytes = int64_t(128) << 10;  // a quarter of a 512 KiB L2
constexpr int64_t kRowBlock = 64;
constexpr int64_t kTasksPerThread = 4;                      // slack for a late thread
// Below this many multiply-adds a parallel job costs more than it saves.
constexpr int64_t kParallelWork = int64_t(1) << 16;

bool cpu_has_avx2_fma_f16c() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!(fma && osxsave && avx && f16c)) return false;
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 6u) != 6u) return false;  // the OS saves the ymm registers
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return b & (1u << 5);
#else
  return false;
#endif
}

}  // namespace

std::vector<const MatmulKernels*> runnable_matmul_kernels() {
  std::vector<const MatmulKernels*> sets;
  if (const MatmulKernels* avx2 = avx2_matmul_kernels(); avx2 && cpu_has_avx2_fma_f16c()) sets.push_back(avx2);
  sets.push_back(&scalar_matmul_kernels());
  return sets;
}

const MatmulKernels& matmul_kernels() {
  static const MatmulKernels* best = runnable_matmul_kernels().front();
  return *best;
}

void matmul(const float* x, const WeightView& w, float* y, int n) {
  if (n <= 0 || w.rows <= 0) return;
  const MatmulKernels& ks = matmul_kernels();
  const MatmulBlockFn kernel = ks.for_dtype(w.dtype);
  const int64_t O = w.rows, K = w.cols;
  const int64_t row_bytes = std::max<int64_t>(1, K * int64_t(dtype_size(w.dtype)));

  // Weight rows per task: fill the L2 share, but leave every thread a few tasks.
  const int64_t x_blocks = (n + kRowBlock - 1) / kRowBlock;
  const int64_t min_w_blocks = (kTasksPerThread * num_threads() + x_blocks - 1) / x_blocks;
  int64_t w_rows = std::min(kWeightBlockBytes / row_bytes, (O + min_w_blocks - 1) / min_w_blocks);
  w_rows = std::max<int64_t>(ks.nr, w_rows / ks.nr * ks.nr);
  const int64_t w_blocks = (O + w_rows - 1) / w_rows;

  parallel_for(
      x_blocks * w_blocks,
      [&](int64_t task, int) {
        const int64_t i0 = task / w_blocks * kRowBlock, o0 = task % w_blocks * w_rows;
        MatmulBlock b;
        b.x = x + i0 * K, b.ldx = K;
        b.w = static_cast<const std::byte*>(w.data) + o0 * row_bytes, b.ldw = K;
        b.y = y + i0 * O + o0, b.ldy = O;
        b.m = std::min<int64_t>(kRowBlock, n - i0), b.n = std::min(w_rows, O - o0), b.K = K;
        kernel(b);
      },
      O * K * n >= kParallelWork ? 0 : 1);
}

void embedding(const WeightView& table, const int32_t* ids, float* out, int n) {
  const int64_t H = table.cols;
  const size_t esz = dtype_size(table.dtype);
  for (int i = 0; i < n; ++i) {
    const auto* row = static_cast<const std::byte*>(table.data) + size_t(ids[i]) * size_t(H) * esz;
    to_f32(row, table.dtype, H, out + int64_t(i) * H);
  }
}

}  // namespace sspan::cpu
