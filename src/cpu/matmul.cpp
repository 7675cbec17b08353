// y[n, O] = x[n, K] . W[O, K]^T on the CPU: the matmul split into blocks for the threads,
// each block computed by the register-tiled kernels of matmul_kernels.h.
//
// A task is a block of up to kRowBlock x-rows by a block of weight rows sized to stay in
// L2 (kWeightBlockBytes): the weights come from memory once per task and are reused from
// L2 by every x tile. Batch-1 decode is the same code with one x row: memory-bound, each
// weight read once, every thread streaming its own blocks.
#include <algorithm>
#include <cstddef>

#include "cpu/cpu_isa.h"
#include "cpu/dot.h"
#include "cpu/matmul_kernels.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace sspan::cpu {
namespace {

constexpr int64_t kWeightBlockBytes = int64_t(128) << 10;  // a quarter of a 512 KiB L2
constexpr int64_t kRowBlock = 64;                           // at most, in whole register tiles
constexpr int64_t kTasksPerThread = 4;                      // slack for a late thread
// Below this many multiply-adds a parallel job costs more than it saves.
constexpr int64_t kParallelWork = int64_t(1) << 16;

}  // namespace

std::vector<const MatmulKernels*> runnable_matmul_kernels() {
  const Isa best = best_isa();  // what this CPU runs, capped by SSPAN_CPU_ISA
  std::vector<const MatmulKernels*> sets;
  if (const MatmulKernels* avx512 = avx512_matmul_kernels(); avx512 && best >= Isa::Avx512) sets.push_back(avx512);
  if (const MatmulKernels* avx2 = avx2_matmul_kernels(); avx2 && best >= Isa::Avx2) sets.push_back(avx2);
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

  // x rows per task: whole register tiles. Weight rows per task: fill the L2 share, but
  // leave every thread a few tasks.
  const int64_t row_block = std::max<int64_t>(ks.mr, kRowBlock / ks.mr * ks.mr);
  const int64_t x_blocks = (n + row_block - 1) / row_block;
  const int64_t min_w_blocks = (kTasksPerThread * num_threads() + x_blocks - 1) / x_blocks;
  int64_t w_rows = std::min(kWeightBlockBytes / row_bytes, (O + min_w_blocks - 1) / min_w_blocks);
  w_rows = std::max<int64_t>(ks.nr, w_rows / ks.nr * ks.nr);
  const int64_t w_blocks = (O + w_rows - 1) / w_rows;

  parallel_for(
      x_blocks * w_blocks,
      [&](int64_t task, int) {
        const int64_t i0 = task / w_blocks * row_block, o0 = task % w_blocks * w_rows;
        MatmulBlock b;
        b.x = x + i0 * K, b.ldx = K;
        b.w = static_cast<const std::byte*>(w.data) + o0 * row_bytes, b.ldw = K;
        b.y = y + i0 * O + o0, b.ldy = O;
        b.m = std::min<int64_t>(row_block, n - i0), b.n = std::min(w_rows, O - o0), b.K = K;
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
