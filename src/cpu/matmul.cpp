// y[n, O] = x[n, K] . W[O, K]^T on the CPU.
//  - one row (batch-1 decode): each weight row is read once and dotted as it is
//    converted; the loop is memory-bound and parallel over output rows.
//  - several rows: a tile of weight rows is converted to fp32 once and reused for every
//    input row, so weights are still read from memory once per call.
#include <vector>

#include "cpu/dot.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace sspan::cpu {
namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelWork = int64_t(1) << 16;

template <class Row>
void matmul_one_row(const float* x, const WeightView& w, float* y) {
  const int64_t O = w.rows, K = w.cols;
  const auto* base = static_cast<const typename std::remove_pointer_t<decltype(Row::p)>*>(w.data);
  parallel_chunks(O, std::max<int64_t>(1, kParallelWork / 2 / K), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) y[o] = dot(Row{base + o * K}, x, K);
  });
}

void matmul_rows(const float* x, const WeightView& w, float* y, int n) {
  constexpr int64_t kTile = 16;  // weight rows converted together (fits L2 for K <= 16k)
  const int64_t O = w.rows, K = w.cols;
  const size_t esz = dtype_size(w.dtype);
  const auto* base = static_cast<const std::byte*>(w.data);
  const int64_t tiles = (O + kTile - 1) / kTile;
  parallel_for(tiles, [&](int64_t tile_index, int) {
    // Per-thread conversion buffer, grown once: nothing is allocated in steady decoding.
    thread_local std::vector<float> tile;
    if (tile.size() < size_t(kTile * K)) tile.resize(size_t(kTile * K));
    {
      const int64_t o0 = tile_index * kTile;
      const int64_t rows = std::min(kTile, O - o0);
      const float* t = tile.data();
      if (w.dtype == DType::F32) {
        t = reinterpret_cast<const float*>(base + size_t(o0 * K) * esz);
      } else {
        to_f32(base + size_t(o0 * K) * esz, w.dtype, rows * K, tile.data());
      }
      for (int64_t r = 0; r < rows; ++r) {
        const F32Row w{t + r * K};
        int i = 0;
        for (; i + 4 <= n; i += 4) {  // four input rows per weight-row pass
          const float* xs[4] = {x + int64_t(i) * K, x + int64_t(i + 1) * K, x + int64_t(i + 2) * K,
                                x + int64_t(i + 3) * K};
          float out[4];
          dot4(w, xs, K, out);
          for (int j = 0; j < 4; ++j) y[int64_t(i + j) * O + o0 + r] = out[j];
        }
        for (; i < n; ++i) y[int64_t(i) * O + o0 + r] = dot(w, x + int64_t(i) * K, K);
      }
    }
  }, O * K * n >= kParallelWork ? 0 : 1);
}

}  // namespace

void matmul(const float* x, const WeightView& w, float* y, int n) {
  if (n <= 0) return;
  if (n == 1) {
    switch (w.dtype) {
      case DType::F32: return matmul_one_row<F32Row>(x, w, y);
      case DType::F16: return matmul_one_row<F16Row>(x, w, y);
      case DType::BF16: return matmul_one_row<BF16Row>(x, w, y);
    }
  }
  matmul_rows(x, w, y, n);
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
