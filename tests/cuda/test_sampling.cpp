// Device sampling: argmax exact; top-k / top-p samples always inside the allowed set, and
// their frequencies match the renormalised distribution (fixed seed); rows holding NaN or
// an infinity are flagged, never sampled.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/device_buffer.h"
#include "cuda_test_util.h"
#include "sampling.h"

namespace sspan::test {
namespace {

using cuda::DeviceBuffer;

template <class T>
DeviceBuffer to_device(const std::vector<T>& v) {
  return device_copy(v, "sampling test input");
}

std::vector<int32_t> from_device(const DeviceBuffer& b, size_t n) {
  std::vector<int32_t> out(n, -7);
  download_bytes(out.data(), b.get(), n * sizeof(int32_t));
  return out;
}

// Renormalised probabilities of the allowed set (sampling.h), zero outside it.
std::vector<double> allowed_distribution(const std::vector<float>& z, float temperature, int top_k, float top_p) {
  const int V = int(z.size());
  std::vector<float> sorted = z;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const float kth = top_k > 0 && top_k < V ? sorted[size_t(top_k - 1)] : -INFINITY;
  const float mx = sorted[0];
  std::vector<double> w(size_t(V), 0.0);
  double total = 0;
  for (int i = 0; i < V; ++i)
    if (z[size_t(i)] >= kth) total += w[size_t(i)] = std::exp(double(z[size_t(i)] - mx) / temperature);
  if (top_p < 1.f) {
    std::vector<double> ws;
    for (double x : w)
      if (x > 0) ws.push_back(x);
    std::sort(ws.begin(), ws.end(), std::greater<>());
    double mass = 0, tau = 0;
    for (double x : ws) {  // mass of {w >= x} for each distinct x, largest first
      mass += x;
      tau = x;
      if (mass >= top_p * total) break;
    }
    for (double& x : w)
      if (x < tau) x = 0;
  }
  double kept = 0;
  for (double x : w) kept += x;
  for (double& x : w) x /= kept;
  return w;
}

kernels::SamplingParams sampling_params(const DeviceBuffer& logits, const DeviceBuffer& uniforms, DeviceBuffer& out,
                                        int rows, int vocab, float temperature, int top_k, float top_p) {
  kernels::SamplingParams p;
  p.logits = logits.as<float>();
  p.uniforms = uniforms.as<float>();
  p.out = out.as<int32_t>();
  p.rows = rows;
  p.vocab = vocab;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

// Parameters that no token could satisfy are refused before anything reaches a device, so
// this test runs with or without one.
TEST(SamplingParamsTest, TopPAtOrBelowZeroIsRefusedByName) {
  for (const float top_p : {0.f, -0.5f, NAN}) {
    kernels::SamplingParams p;
    p.rows = 1;
    p.vocab = 8;
    p.top_p = top_p;
    try {
      kernels::launch_sample(p, nullptr);
      ADD_FAILURE() << "top_p " << top_p << " was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos) << e.what();
    }
  }
}

class SamplingTest : public ::testing::Test {
 protected:
  void SetUp() override { SSPAN_REQUIRE_CUDA(); }
  std::mt19937 rng_{2024};
};

TEST_F(SamplingTest, ArgmaxIsExactWithTiesToTheSmallestIndex) {
  const int rows = 33, vocab = 32000;
  std::normal_distribution<float> n(0.f, 3.f);
  std::vector<float> z(size_t(rows) * vocab);
  for (float& x : z) x = n(rng_);
  for (int r = 0; r < rows; ++r) z[size_t(r) * vocab + size_t(r * 97 % vocab)] = 100.f;  // a tie for row r
  for (int r = 0; r < rows; ++r) z[size_t(r) * vocab + size_t((r * 97 + 500) % vocab)] = 100.f;
  DeviceBuffer zd = to_device(z), out(size_t(rows) * 4, "ids");
  kernels::launch_argmax(zd.as<float>(), rows, vocab, out.as<int32_t>(), test_stream());
  const auto ids = from_device(out, size_t(rows));
  for (int r = 0; r < rows; ++r) {
    const float* row = &z[size_t(r) * vocab];
    const int expect = int(std::max_element(row, row + vocab) - row);  // first maximum
    EXPECT_EQ(ids[size_t(r)], expect) << "row " << r;
  }
}

struct SampleCase {
  float temperature;
  int top_k;
  float top_p;
};

TEST_F(SamplingTest, SamplesStayInTheAllowedSetWithMatchingFrequencies) {
  const int vocab = 1000, rows = 40000;
  std::normal_distribution<float> n(0.f, 2.f);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& x : logits) x = n(rng_);
  for (SampleCase c : {SampleCase{1.f, 0, 1.f}, SampleCase{0.7f, 20, 1.f}, SampleCase{1.f, 0, 0.8f},
                       SampleCase{1.3f, 50, 0.9f}, SampleCase{1.f, 1, 1.f}}) {
    SCOPED_TRACE(testing::Message() << "T=" << c.temperature << " top_k=" << c.top_k << " top_p=" << c.top_p);
    std::vector<float> z(static_cast<size_t>(rows) * vocab), u(static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r) std::copy(logits.begin(), logits.end(), z.begin() + ptrdiff_t(r) * vocab);
    std::uniform_real_distribution<float> uni(0.f, 1.f);
    for (float& x : u) x = uni(rng_);
    DeviceBuffer zd = to_device(z), ud = to_device(u), out(size_t(rows) * 4, "ids");
    kernels::launch_sample(sampling_params(zd, ud, out, rows, vocab, c.temperature, c.top_k, c.top_p), test_stream());
    const auto ids = from_device(out, size_t(rows));

    const std::vector<double> prob = allowed_distribution(logits, c.temperature, c.top_k, c.top_p);
    std::vector<int> hist(size_t(vocab), 0);
    int outside = 0;
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab || prob[size_t(id)] == 0) ++outside;
      else ++hist[size_t(id)];
    }
    EXPECT_EQ(outside, 0) << "samples outside the allowed set";
    for (int i = 0; i < vocab; ++i) {
      const double pr = prob[size_t(i)], f = double(hist[size_t(i)]) / rows;
      EXPECT_LE(std::abs(f - pr), 5 * std::sqrt(pr * (1 - pr) / rows) + 1e-4) << "token " << i << " p=" << pr;
    }
  }
}

TEST_F(SamplingTest, RowsWithNanOrInfinityAreFlaggedNotChosen) {
  // Row 0 finite, row 1 a NaN, row 2 +inf, row 3 -inf, row 4 all NaN: both selections flag
  // every row but the first with kNonFiniteRow (the backend turns that into an error that
  // names the token), and never return an id for them.
  const int rows = 5, vocab = 3000;
  std::vector<float> z(size_t(rows) * vocab);
  std::normal_distribution<float> n(0.f, 1.f);
  for (float& x : z) x = n(rng_);
  z[size_t(0) * vocab + 17] = 50.f;
  z[size_t(1) * vocab + 0] = NAN;  // first index: a NaN there must not win
  z[size_t(2) * vocab + 2999] = INFINITY;
  z[size_t(3) * vocab + 5] = -INFINITY;
  for (int i = 0; i < vocab; ++i) z[size_t(4) * vocab + size_t(i)] = NAN;
  const std::vector<int32_t> want{17, kernels::kNonFiniteRow, kernels::kNonFiniteRow, kernels::kNonFiniteRow,
                                  kernels::kNonFiniteRow};
  DeviceBuffer zd = to_device(z), out(size_t(rows) * 4, "ids");
  kernels::launch_argmax(zd.as<float>(), rows, vocab, out.as<int32_t>(), test_stream());
  EXPECT_EQ(from_device(out, size_t(rows)), want) << "argmax";
  const std::vector<float> u(size_t(rows), 0.5f);
  DeviceBuffer ud = to_device(u);
  kernels::SamplingParams p = sampling_params(zd, ud, out, rows, vocab, 0.7f, 50, 0.9f);
  kernels::launch_sample(p, test_stream());
  EXPECT_EQ(from_device(out, size_t(rows)), want) << "sample (row 0's 50 beats the rest by far)";
  p.temperature = 1e-39f;  // a denormal temperature: 1 / T overflows, so greedy
  kernels::launch_sample(p, test_stream());
  EXPECT_EQ(from_device(out, size_t(rows)), want) << "tiny temperature";
}

}  // namespace
}  // namespace sspan::test
