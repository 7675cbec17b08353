// rope_inv_freq against the plain formulas, evaluated in double: default 1/theta^(2i/D),
// linear (divided by the factor) and llama3 (piecewise in the wavelength).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
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

// Bit patterns of transformers' own llama3 inv_freq (Llama 3.1 settings), from
//   ROPE_INIT_FUNCTIONS["llama3"](LlamaConfig(hidden_size=512, num_attention_heads=4,
//       head_dim=128, rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0,
//       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
//       "original_max_position_embeddings": 8192}), "cpu")[0]
// Matching them bit for bit shows the float32 steps (and no FMA contraction) agree.
TEST(Rope, Llama3MatchesTransformersBitForBit) {
  static const uint32_t kTransformers[64] = {
    0x3f800000, 0x3f508ac1, 0x3f29e1c6, 0x3f0a6384, 0x3ee177bc, 0x3eb7ab7d,
    0x3e959ee3, 0x3e73c461, 0x3e4693b0, 0x3e21c3a0, 0x3e03c6a0, 0x3dd6b19c,
    0x3daee4ad, 0x3d8e7898, 0x3d681e67, 0x3d3d1684, 0x3d1a08c8, 0x3cfaf53f,
    0x3ccc6f49, 0x3ca68939, 0x3c87a9c3, 0x3c5d06ec, 0x3c340d6d, 0x3c12ac7f,
    0x3beef74f, 0x3bc2aa76, 0x3b9e9402, 0x3b812e35, 0x3b527720, 0x3b0dfd06,
    0x3ab3d11d, 0x3a60979e, 0x3a0995d2, 0x39a3f108, 0x393b2dd2, 0x38c86886,
    0x38a3418d, 0x3884fdbf, 0x3858ac81, 0x38308199, 0x380fc8f8, 0x37ea426f,
    0x37bed4f4, 0x379b7475, 0x377d45c3, 0x374e51f5, 0x3728126b, 0x3708ea0f,
    0x36df10c4, 0x36b5b687, 0x369406cb, 0x36712b80, 0x36447610, 0x36200a69,
    0x36025f34, 0x35d46808, 0x35ad07a7, 0x358cf400, 0x3565a54d, 0x353b12c7,
    0x351864a7, 0x34f848c2, 0x34ca41b0, 0x34a4c2ff,
  };
  auto c = config(128, 500000.0);
  c.rope_scaling = {RopeScaling::Type::Llama3, 8.0, 1.0, 4.0, 8192, {}};
  const auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 64u);
  for (size_t i = 0; i < 64; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &f[i], 4);
    EXPECT_EQ(bits, kTransformers[i]) << "i=" << i << " got " << f[i];
  }
}

}  // namespace
}  // namespace sspan::test
