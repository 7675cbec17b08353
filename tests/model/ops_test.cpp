// CPU ops against straightforward formulas (computed in double).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cpu/ops.h"
#include "sspan/dtype.h"

namespace sspan::cpu {
namespace {

std::vector<float> random_vec(std::mt19937& rng, size_t n, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  double max_ref = 0;
  for (double w : want) max_ref = std::max(max_ref, std::abs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << " NaN at " << i;
    ASSERT_NEAR(got[i], want[i], rel * std::max(std::abs(want[i]), 1e-3 * max_ref)) << what << " at " << i;
  }
}

TEST(CpuOps, RmsNormMatchesFormula) {
  std::mt19937 rng(1);
  const int n = 5, H = 77;
  auto x = random_vec(rng, n * H), w = random_vec(rng, H);
  std::vector<float> out(n * H);
  rms_norm(x.data(), w.data(), 1e-5f, out.data(), n, H);
  std::vector<double> want(n * H);
  for (int i = 0; i < n; ++i) {
    double ss = 0;
    for (int j = 0; j < H; ++j) ss += double(x[i * H + j]) * x[i * H + j];
    const double inv = 1.0 / std::sqrt(ss / H + 1e-5);
    for (int j = 0; j < H; ++j) want[i * H + j] = w[j] * x[i * H + j] * inv;
  }
  expect_close(out, want, 1e-5, "rms_norm");
}

TEST(CpuOps, RopeIsRotateHalf) {
  std::mt19937 rng(2);
  const int n = 4, heads = 3, D = 16;
  auto x = random_vec(rng, n * heads * D);
  std::vector<float> inv(D / 2);
  for (int i = 0; i < D / 2; ++i) inv[i] = float(1.0 / std::pow(10000.0, 2.0 * i / D));
  std::vector<int32_t> pos = {0, 1, 17, 300};
  auto y = x;
  std::vector<float> table(n * D);
  rope_table(pos.data(), inv.data(), n, D, table.data());
  rope(y.data(), table.data(), n, heads, D);
  std::vector<double> want(x.size());
  for (int r = 0; r < n; ++r)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < D; ++i) {
        const float* v = &x[(r * heads + h) * D];
        const int j = i % (D / 2);
        const double a = double(float(pos[r]) * inv[j]);
        const double rot = i < D / 2 ? -v[i + D / 2] : v[i - D / 2];  // rotate_half
        want[(r * heads + h) * D + i] = v[i] * std::cos(a) + rot * std::sin(a);
      }
  expect_close(y, want, 1e-5, "rope");
}

TEST(CpuOps, SwigluAndAdd) {
  std::mt19937 rng(3);
  auto g = random_vec(rng, 1000, 3.f), u = random_vec(rng, 1000);
  std::vector<float> out(1000);
  swiglu(g.data(), u.data(), out.data(), 1000);
  std::vector<double> want(1000);
  for (int i = 0; i < 1000; ++i) want[i] = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i];
  expect_close(out, want, 1e-5, "swiglu");
  auto x = g;
  add(x.data(), u.data(), 1000);
  for (int i = 0; i < 1000; ++i) want[i] = double(g[i]) + u[i];
  expect_close(x, want, 1e-6, "add");
}

// SiLU through its own exp: every element within 4 ulp of the double formula over the
// whole range (saturating and underflowing ends included), the same bits whether an element
// is computed in a long run or alone (prefill and decode agree), and NaN stays NaN.
TEST(CpuOps, SwigluEveryElementWithinFourUlpAndIndependentOfTheRun) {
  std::vector<float> g, u;
  for (float v = -104.f; v <= 104.f; v += 0.0137f) g.push_back(v);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 87.3f, -87.3f, 88.7f, -88.7f, 1e30f, -1e30f}) g.push_back(v);
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> ud(-2.f, 2.f);
  for (size_t i = 0; i < g.size(); ++i) u.push_back(ud(rng));
  const int64_t n = int64_t(g.size());
  std::vector<float> out(g.size());
  swiglu(g.data(), u.data(), out.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double want = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * double(u[i]);
    const double ulp = std::max(double(std::numeric_limits<float>::denorm_min()),
                                std::abs(double(std::nextafter(float(want), INFINITY)) - double(float(want))));
    // Where exp(-|g|) would be denormal (g < -87.3) it is 0: an error under 1e-35.
    ASSERT_LE(std::abs(out[i] - want), std::max(4 * ulp, 1e-35)) << "g " << g[i] << " up " << u[i];
    float alone;
    swiglu(&g[size_t(i)], &u[size_t(i)], &alone, 1);
    ASSERT_EQ(std::memcmp(&alone, &out[size_t(i)], sizeof alone), 0) << "g " << g[i];
  }
  const float nan = std::numeric_limits<float>::quiet_NaN(), one = 1.f;
  float y;
  swiglu(&nan, &one, &y, 1);
  EXPECT_TRUE(std::isnan(y));
}

class MatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTest, MatchesDoubleAndRowCountDoesNotChangeResults) {
  const DType dt = GetParam();
  std::mt19937 rng(4);
  const int n = 7, K = 203, O = 45;  // K not a multiple of 8 or 32: exercises the tails
  auto x = random_vec(rng, n * K);
  auto wf = random_vec(rng, O * K, 0.1f);
  std::vector<uint16_t> w16(wf.size());
  const void* wdata = wf.data();
  if (dt != DType::F32) {
    for (size_t i = 0; i < wf.size(); ++i) {
      w16[i] = dt == DType::F16 ? float_to_half(wf[i]) : float_to_bf16(wf[i]);
      wf[i] = dt == DType::F16 ? half_to_float(w16[i]) : bf16_to_float(w16[i]);  // the stored values
    }
    wdata = w16.data();
  }
  WeightView w{wdata, dt, O, K};
  std::vector<float> y(n * O);
  matmul(x.data(), w, y.data(), n);
  std::vector<double> want(n * O);
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < O; ++o) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += double(x[i * K + k]) * wf[o * K + k];
      want[i * O + o] = s;
    }
  expect_close(y, want, 1e-4, "matmul");
  // Each row alone gives bit-identical results (prefill and decode agree exactly).
  for (int i = 0; i < n; ++i) {
    std::vector<float> yi(O);
    matmul(&x[i * K], w, yi.data(), 1);
    for (int o = 0; o < O; ++o) ASSERT_EQ(yi[o], y[i * O + o]) << "row " << i << " col " << o;
  }
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, MatmulTest, ::testing::Values(DType::F32, DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(CpuOps, HalfConversionsRoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), uint16_t(h)) << h;
  }
  EXPECT_EQ(float_to_half(65520.f), 0x7c00);  // rounds to inf
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
}

}  // namespace
}  // namespace sspan::cpu
