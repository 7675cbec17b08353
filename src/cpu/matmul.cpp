// y[n, O] = x[n, K] . W[O, K]^T on the CPU: the matmul split into blocks for the threads,
// each block computed by the register-tiled kernels of matmul_kernels.h.
//
// A task is a block of up to kRowBlock x-rows by a block of weight rows (up to
// kWeightBlockBytes): the weights come from memory once per task and are reused from
// cache by every x tile. Projections of one input (q, k, v) share one job: their tasks are
// numbered one weight after another. Batch-1 decode is the same code with one x row:
// memory-bound, each weight read once, every thread streaming its own blocks.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <string>

#include "common/check.h"
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
  const MatmulOutput one{w, y};
  matmul(x, std::span(&one, 1), n);
}

void matmul(const float* x, std::span<const MatmulOutput> outputs, int n) {
  if (n <= 0 || outputs.empty()) return;
  SSPAN_CHECK(outputs.size() <= size_t(kMaxMatmulOutputs), "matmul: {} outputs, at most {}", outputs.size(),
              kMaxMatmulOutputs);
  const int64_t K = outputs[0].w.cols;
  int64_t O_total = 0;
  for (const MatmulOutput& o : outputs) {
    SSPAN_CHECK(o.w.cols == K, "matmul: the outputs' weights read {} and {} inputs", K, o.w.cols);
    O_total += o.w.rows;
  }
  if (O_total <= 0) return;
  const MatmulKernels& ks = matmul_kernels();
  for (const MatmulOutput& o : outputs)
    SSPAN_CHECK(o.w.group == 0 || o.w.group == ks.pack_rows,
                "matmul: weights packed in groups of {} rows, but the {} kernels read {}", o.w.group, ks.isa,
                ks.pack_rows ? fmt::format("groups of {}", ks.pack_rows) : std::string("row-major weights"));

  // x rows per task: whole register tiles. Weight rows per task: fill the L2 share, but
  // leave every thread a few tasks over all the outputs together.
  const int64_t row_block = std::max<int64_t>(ks.mr, kRowBlock / ks.mr * ks.mr);
  const int64_t x_blocks = (n + row_block - 1) / row_block;
  const int64_t min_w_blocks = (kTasksPerThread * num_threads() + x_blocks - 1) / x_blocks;
  struct Plan {
    MatmulBlockFn kernel;
    int64_t row_bytes, w_rows, w_blocks, first_task;
  };
  std::array<Plan, kMaxMatmulOutputs> plans{};
  int64_t tasks = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const WeightView& w = outputs[i].w;
    Plan& p = plans[i];
    p.kernel = ks.for_dtype(w.dtype, w.group > 0);
    p.row_bytes = std::max<int64_t>(1, K * int64_t(dtype_size(w.dtype)));
    const int64_t share = (w.rows * min_w_blocks + O_total - 1) / O_total;  // this weight's part of the blocks
    p.w_rows = std::min(kWeightBlockBytes / p.row_bytes, (w.rows + share - 1) / std::max<int64_t>(share, 1));
    p.w_rows = std::max<int64_t>(ks.nr, p.w_rows / ks.nr * ks.nr);  // whole packed groups too (nr % G == 0)
    p.w_blocks = w.rows > 0 ? (w.rows + p.w_rows - 1) / p.w_rows : 0;
    p.first_task = tasks;
    tasks += x_blocks * p.w_blocks;
  }

  parallel_for(
      tasks,
      [&](int64_t task, int) {
        size_t i = 0;
        while (i + 1 < outputs.size() && task >= plans[i + 1].first_task) ++i;
        const Plan& p = plans[i];
        const WeightView& w = outputs[i].w;
        const int64_t t = task - p.first_task, O = w.rows;
        const int64_t i0 = t / p.w_blocks * row_block, o0 = t % p.w_blocks * p.w_rows;
        MatmulBlock b;
        b.x = x + i0 * K, b.ldx = K;
        b.w = static_cast<const std::byte*>(w.data) + o0 * p.row_bytes, b.ldw = K;
        b.y = outputs[i].y + i0 * O + o0, b.ldy = O;
        b.m = std::min<int64_t>(row_block, n - i0), b.n = std::min(p.w_rows, O - o0), b.K = K;
        p.kernel(b);
      },
      O_total * K * n >= kParallelWork ? 0 : 1);
}

size_t packed_bytes(const WeightView& w, int group) {
  const int64_t groups = (w.rows + group - 1) / group;
  return size_t(groups * group * w.cols) * dtype_size(w.dtype);
}

void pack_weight(const WeightView& w, int group, std::byte* dst) {
  SSPAN_CHECK(w.group == 0 && group > 0, "pack_weight: the weight is packed already");
  const int64_t K = w.cols, K8 = K - K % 8, G = group, groups = (w.rows + G - 1) / G;
  const size_t esz = dtype_size(w.dtype);
  const auto* src = static_cast<const std::byte*>(w.data);
  parallel_for(groups, [&](int64_t g, int) {
    std::byte* out = dst + size_t(g * G * K) * esz;
    for (int64_t j = 0; j < G; ++j) {
      const int64_t r = g * G + j;
      const std::byte* row = src + size_t(r * K) * esz;
      for (int64_t c = 0; c < K8 / 8; ++c) {
        std::byte* at = out + size_t((c * G + j) * 8) * esz;
        if (r < w.rows) std::memcpy(at, row + size_t(c * 8) * esz, 8 * esz);
        else std::memset(at, 0, 8 * esz);  // padding rows: zeros, never stored
      }
      std::byte* tail = out + size_t(K8 * G + j * (K - K8)) * esz;
      if (r < w.rows) std::memcpy(tail, row + size_t(K8) * esz, size_t(K - K8) * esz);
      else std::memset(tail, 0, size_t(K - K8) * esz);
    }
  });
}

MatmulWeight pack_for_matmul(const WeightView& w) {
  const int G = matmul_kernels().pack_rows;
  if (G == 0 || w.group != 0) return {nullptr, w};
  MatmulWeight packed{std::shared_ptr<std::byte[]>(new std::byte[packed_bytes(w, G)]), w};
  pack_weight(w, G, packed.storage.get());
  packed.view.data = packed.storage.get();
  packed.view.group = G;
  return packed;
}

void embedding(const WeightView& table, const int32_t* ids, float* out, int n) {
  const int64_t H = table.cols, H8 = H - H % 8, G = table.group;
  const size_t esz = dtype_size(table.dtype);
  const auto* base = static_cast<const std::byte*>(table.data);
  for (int i = 0; i < n; ++i) {
    float* dst = out + int64_t(i) * H;
    if (G == 0) {
      to_f32(base + size_t(ids[i]) * size_t(H) * esz, table.dtype, H, dst);
      continue;
    }
    // Row j of group g: its 8-column chunks G * 8 values apart, then its tail.
    const int64_t g = ids[i] / G, j = ids[i] % G;
    const std::byte* group = base + size_t(g * G * H) * esz;
    for (int64_t c = 0; c < H8 / 8; ++c) to_f32(group + size_t((c * G + j) * 8) * esz, table.dtype, 8, dst + c * 8);
    to_f32(group + size_t(H8 * G + j * (H - H8)) * esz, table.dtype, H - H8, dst + H8);
  }
}

}  // namespace sspan::cpu
