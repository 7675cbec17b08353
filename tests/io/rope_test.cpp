// rope_inv_freq against the plain formulas, evaluated in double: default 1/theta^(2i/D),
// linear (divided by the factor) and llama3 (piecewise in the wavelength).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "sspan/config.h"

namespace sspan::test {
namespace {

ModelConfig config(int head_dim, double theta) {
  ModelConfig c;
  c.hidden_size = head_dim * 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.head_dim = head_dim;
  c.rope_theta = theta;
  return c;
}

double plain_inv_freq(int i, int D, double theta) { return 1.0 / std::pow(theta, 2.0 * i / D); }

// The float32 computation may differ from double by a few float ulps.
void expect_close(float got, double want, int i) {
  EXPECT_NEAR(got, want, 4e-7 * std::abs(want)) << "i=" << i;
}

TEST(Rope, DefaultFrequencies) {
  const auto c = config(128, 10000.0);
  const auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_EQ(f[0], 1.0f);
  for (int i = 0; i < 64; ++i) expect_close(f[size_t(i)], plain_inv_freq(i, 128, 10000.0), i);
}

TEST(Rope, LinearScalingDividesByFactor) {
  auto c = config(64, 10000.0);
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 4.0;
  const auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 32u);
  for (int i = 0; i < 32; ++i) expect_close(f[size_t(i)], plain_inv_freq(i, 64, 10000.0) / 4.0, i);
}

TEST(Rope, Llama3ScalingIsPiecewiseInWavelength) {
  auto c = config(128, 500000.0);  // Llama 3.1 settings
  auto& r = c.rope_scaling;
  r.type = RopeScaling::Type::Llama3;
  r.factor = 8.0;
  r.low_freq_factor = 1.0;
  r.high_freq_factor = 4.0;
  r.original_max_position_embeddings = 8192;
  const auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 64u);
  const double low_wavelen = 8192 / 1.0, high_wavelen = 8192 / 4.0;
  int kept = 0, divided = 0, smoothed = 0;
  for (int i = 0; i < 64; ++i) {
    const double base = plain_inv_freq(i, 128, 500000.0);
    const double wavelen = 2 * std::numbers::pi / base;
    double want;
    if (wavelen < high_wavelen) {
      want = base, ++kept;
    } else if (wavelen > low_wavelen) {
      want = base / 8.0, ++divided;
    } else {
      const double s = (8192 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - s) * base / 8.0 + s * base, ++smoothed;
    }
    EXPECT_NEAR(f[size_t(i)], want, 2e-6 * want) << "i=" << i;
  }
  // All three regimes are exercised by these settings.
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

}  // namespace
}  // namespace sspan::test
