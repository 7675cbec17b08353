// The matmul kernels: every set this CPU runs equals the scalar reference bit for bit on
// random blocks of every edge shape, over row-major and over packed weights, and the
// threaded matmul equals it whatever the number of rows or threads (the order of
// matmul_kernels.h makes both exact).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/matmul_kernels.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "sspan/dtype.h"

namespace sspan::cpu {
namespace {

// Weights stored as `dtype`, with their exact fp32 values for the reference.
struct Weights {
  std::vector<float> f32;     // stored values as fp32
  std::vector<uint16_t> h16;  // fp16/bf16 storage
  DType dtype;
  const void* data() const { return dtype == DType::F32 ? static_cast<const void*>(f32.data()) : h16.data(); }
};

Weights random_weights(std::mt19937& rng, DType dtype, size_t count) {
  std::normal_distribution<float> d(0.f, 0.1f);
  Weights w{std::vector<float>(count), std::vector<uint16_t>(count), dtype};
  for (size_t i = 0; i < count; ++i) {
    const float v = d(rng);
    if (dtype == DType::F16) w.h16[i] = float_to_half(v), w.f32[i] = half_to_float(w.h16[i]);
    else if (dtype == DType::BF16) w.h16[i] = float_to_bf16(v), w.f32[i] = bf16_to_float(w.h16[i]);
    else w.f32[i] = v;
  }
  return w;
}

std::vector<float> random_x(std::mt19937& rng, size_t count) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> x(count);
  for (auto& v : x) v = d(rng);
  return x;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

class MatmulKernelsTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulKernelsTest, EveryRunnableSetEqualsTheScalarReferenceBitForBit) {
  const DType dt = GetParam();
  const MatmulKernels& ref = scalar_matmul_kernels();
  std::mt19937 rng(11);
  for (const MatmulKernels* set : runnable_matmul_kernels()) {
    SCOPED_TRACE(set->isa);
    // Every tile edge (m, n below and above the register tile) and every K tail.
    for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 9, 13})
      for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 9, 17})
        for (int64_t K : {1, 7, 8, 9, 16, 203}) {
          const int64_t ldx = K + 3, ldw = K + 5, ldy = n + 2;  // strides wider than the rows
          const Weights w = random_weights(rng, dt, size_t(n * ldw));
          const std::vector<float> x = random_x(rng, size_t(m * ldx));
          std::vector<float> got(size_t(m * ldy), -1.f), want(got);
          MatmulBlock b{x.data(), ldx, w.data(), ldw, got.data(), ldy, m, n, K};
          set->for_dtype(dt)(b);
          b.y = want.data();
          ref.for_dtype(dt)(b);
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_TRUE(same_bits(got[i], want[i]))
                << "m " << m << " n " << n << " K " << K << " at " << i << ": " << got[i] << " vs " << want[i];
        }
  }
}

// The packed layout of matmul_kernels.h, element by element: (row r, column k) of a group
// of G rows sits in its 8-column chunk, or in the row's tail; padding rows are zeros.
int64_t packed_index(int64_t r, int64_t k, int64_t K, int64_t G) {
  const int64_t K8 = K - K % 8, g = r / G, j = r % G;
  const int64_t in_group = k < K8 ? (k / 8 * G + j) * 8 + k % 8 : K8 * G + j * (K - K8) + (k - K8);
  return g * G * K + in_group;
}

TEST_P(MatmulKernelsTest, PackedLayoutPlacesEveryElementAndEmbeddingReadsItBack) {
  const DType dt = GetParam();
  std::mt19937 rng(15);
  for (int G : {1, 3, 8})
    for (int64_t rows : {1, 7, 8, 9, 19})
      for (int64_t K : {1, 8, 13, 24}) {
        const Weights w = random_weights(rng, dt, size_t(rows * K));
        const WeightView plain{w.data(), dt, rows, K};
        std::vector<std::byte> packed(packed_bytes(plain, G), std::byte{0x7f});
        ASSERT_EQ(packed.size(), size_t((rows + G - 1) / G * G * K) * dtype_size(dt));
        pack_weight(plain, G, packed.data());
        const size_t esz = dtype_size(dt);
        for (int64_t r = 0; r < (rows + G - 1) / G * G; ++r)
          for (int64_t k = 0; k < K; ++k) {
            const std::byte* got = packed.data() + size_t(packed_index(r, k, K, G)) * esz;
            std::vector<std::byte> want(esz, std::byte{0});
            if (r < rows) std::memcpy(want.data(), static_cast<const std::byte*>(w.data()) + size_t(r * K + k) * esz, esz);
            ASSERT_EQ(std::memcmp(got, want.data(), esz), 0) << "G " << G << " row " << r << " col " << k;
          }
        std::vector<int32_t> ids;
        for (int64_t r = rows - 1; r >= 0; --r) ids.push_back(int32_t(r));
        std::vector<float> from_plain(size_t(rows * K)), from_packed(size_t(rows * K), -1.f);
        embedding(plain, ids.data(), from_plain.data(), int(rows));
        embedding({packed.data(), dt, rows, K, G}, ids.data(), from_packed.data(), int(rows));
        ASSERT_EQ(from_plain, from_packed) << "G " << G << " rows " << rows << " K " << K;
      }
}

TEST_P(MatmulKernelsTest, EveryPackedSetEqualsTheScalarReferenceBitForBit) {
  const DType dt = GetParam();
  const MatmulKernels& ref = scalar_matmul_kernels();
  std::mt19937 rng(16);
  int sets = 0;
  for (const MatmulKernels* set : runnable_matmul_kernels()) {
    if (set->pack_rows == 0) continue;
    ++sets;
    SCOPED_TRACE(set->isa);
    for (int64_t m : {1, 2, 5, 6, 7, 13})
      for (int64_t n : {1, 3, 8, 9, 17, 24})
        for (int64_t K : {1, 7, 8, 9, 16, 203}) {
          const int64_t ldx = K + 3, ldy = n + 2;
          const Weights w = random_weights(rng, dt, size_t(n * K));
          const WeightView plain{w.data(), dt, n, K};
          std::vector<std::byte> packed(packed_bytes(plain, set->pack_rows));
          pack_weight(plain, set->pack_rows, packed.data());
          const std::vector<float> x = random_x(rng, size_t(m * ldx));
          std::vector<float> got(size_t(m * ldy), -1.f), want(got);
          set->for_dtype(dt, true)({x.data(), ldx, packed.data(), K, got.data(), ldy, m, n, K});
          ref.for_dtype(dt)({x.data(), ldx, w.data(), K, want.data(), ldy, m, n, K});
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_TRUE(same_bits(got[i], want[i]))
                << "m " << m << " n " << n << " K " << K << " at " << i << ": " << got[i] << " vs " << want[i];
        }
  }
  if (sets == 0) GTEST_SKIP() << "no kernel set this CPU runs reads packed weights";
}

TEST_P(MatmulKernelsTest, ScalarReferenceMatchesDouble) {
  const DType dt = GetParam();
  std::mt19937 rng(12);
  const int64_t m = 3, n = 5, K = 203;
  const Weights w = random_weights(rng, dt, size_t(n * K));
  const std::vector<float> x = random_x(rng, size_t(m * K));
  std::vector<float> y(size_t(m * n));
  scalar_matmul_kernels().for_dtype(dt)({x.data(), K, w.data(), K, y.data(), n, m, n, K});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < n; ++o) {
      double s = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(i * K + k)]) * w.f32[size_t(o * K + k)],
                                      mag += std::abs(double(x[size_t(i * K + k)]) * w.f32[size_t(o * K + k)]);
      ASSERT_NEAR(y[size_t(i * n + o)], s, 1e-6 * mag) << i << "," << o;
    }
}

// The threaded matmul over several blocks of rows and weights, at 1 and 3 threads, against
// the scalar reference on the whole problem, and each row alone against the batch.
TEST_P(MatmulKernelsTest, ThreadedMatmulEqualsReferenceForAnyRowsAndThreads) {
  const DType dt = GetParam();
  std::mt19937 rng(13);
  const int64_t n = 70, O = 1001, K = 203;  // n > one row block, O > one weight block
  const Weights w = random_weights(rng, dt, size_t(O * K));
  const std::vector<float> x = random_x(rng, size_t(n * K));
  std::vector<float> want(size_t(n * O));
  scalar_matmul_kernels().for_dtype(dt)({x.data(), K, w.data(), K, want.data(), O, n, O, K});
  const WeightView row_major{w.data(), dt, O, K};
  const MatmulWeight packed = pack_for_matmul(row_major);  // the backend's layout
  EXPECT_EQ(packed.view.group, matmul_kernels().pack_rows);
  for (const WeightView& view : {row_major, packed.view})
    for (int threads : {1, 3}) {
      SCOPED_TRACE(view.group ? "packed" : "row-major");
      set_num_threads(threads);
      std::vector<float> y(size_t(n * O));
      matmul(x.data(), view, y.data(), int(n));
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_TRUE(same_bits(y[i], want[i])) << threads << " threads, element " << i;
      for (int64_t r : {int64_t(0), int64_t(37), n - 1}) {
        std::vector<float> yr(static_cast<size_t>(O));
        matmul(&x[size_t(r * K)], view, yr.data(), 1);
        for (int64_t o = 0; o < O; ++o)
          ASSERT_TRUE(same_bits(yr[size_t(o)], want[size_t(r * O + o)])) << "row " << r << " alone, col " << o;
      }
    }
  set_num_threads(0);
  // Weights packed for kernels this process does not run are an error, not wrong numbers.
  std::vector<float> y(static_cast<size_t>(O));
  const WeightView foreign{w.data(), dt, O, K, matmul_kernels().pack_rows + 3};
  EXPECT_THROW(matmul(x.data(), foreign, y.data(), 1), std::exception);
}

// Projections of one input run as one job (q, k, v of unequal widths; an empty one; two
// dtypes in a group) give each output the bits of its matmul alone, at 1 and 3 threads and
// for row counts within and beyond one row block.
TEST_P(MatmulKernelsTest, OneJobOverSeveralWeightsEqualsEachMatmulAlone) {
  const DType dt = GetParam();
  std::mt19937 rng(14);
  const int64_t K = 203;
  const std::vector<int64_t> widths = {257, 64, 0, 65};
  std::vector<Weights> ws;
  for (size_t i = 0; i < widths.size(); ++i)
    ws.push_back(random_weights(rng, i == 3 ? DType::F32 : dt, size_t(widths[i] * K)));
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    for (int n : {1, 16, 70}) {
      const std::vector<float> x = random_x(rng, size_t(n * K));
      std::vector<std::vector<float>> got(widths.size()), want(widths.size());
      std::vector<MatmulOutput> outs;
      std::vector<MatmulWeight> packs;
      packs.reserve(widths.size());
      for (size_t i = 0; i < widths.size(); ++i) {
        got[i].assign(size_t(n * widths[i]), -1.f), want[i] = got[i];
        const WeightView view{ws[i].data(), ws[i].dtype, widths[i], K};
        matmul(x.data(), view, want[i].data(), n);
        packs.push_back(pack_for_matmul(view));  // as the backend holds them
        outs.push_back({packs.back().view, got[i].data()});
      }
      matmul(x.data(), std::span<const MatmulOutput>(outs), n);
      for (size_t i = 0; i < widths.size(); ++i)
        for (size_t e = 0; e < got[i].size(); ++e)
          ASSERT_TRUE(same_bits(got[i][e], want[i][e]))
              << threads << " threads, " << n << " rows, output " << i << " element " << e;
    }
  }
  set_num_threads(0);
  // Weights that read different inputs cannot share one.
  const Weights w = random_weights(rng, dt, size_t(8 * K));
  std::vector<float> x(size_t(K + 1)), y(16);
  const std::vector<MatmulOutput> mixed = {{{w.data(), dt, 8, K}, y.data()}, {{w.data(), dt, 8, K - 1}, y.data() + 8}};
  EXPECT_THROW(matmul(x.data(), std::span<const MatmulOutput>(mixed), 1), std::exception);
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, MatmulKernelsTest, ::testing::Values(DType::F32, DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(MatmulKernels, TheChosenSetIsTheFastestRunnable) {
  const auto sets = runnable_matmul_kernels();
  ASSERT_FALSE(sets.empty());
  EXPECT_STREQ(sets.back()->isa, "scalar");
  EXPECT_EQ(&matmul_kernels(), sets.front());
}

}  // namespace
}  // namespace sspan::cpu
