// RoPE inverse frequencies as transformers computes them. transformers works in float32
// throughout (exponent 2i/D, the pow, the scaling); doing the same here, operation for
// operation, keeps our rotary angles bit-close to the reference logits. This file is
// compiled with -ffp-contract=off so that no fused multiply-add changes the rounding.
#include <cmath>
#include <numbers>

#include "common/check.h"
#include "sspan/config.h"

namespace sspan {
namespace {

// transformers' _compute_llama3_parameters: long wavelengths are divided by `factor`,
// short ones kept, and the band between interpolated smoothly.
void apply_llama3(const RopeScaling& r, std::vector<float>& inv_freq) {
  const float factor = float(r.factor);
  const float low = float(r.low_freq_factor);
  const float high_minus_low = float(r.high_freq_factor - r.low_freq_factor);
  const float old_context = float(r.original_max_position_embeddings);
  const float low_freq_wavelen = float(double(r.original_max_position_embeddings) / r.low_freq_factor);
  const float high_freq_wavelen = float(double(r.original_max_position_embeddings) / r.high_freq_factor);
  const float two_pi = float(2.0 * std::numbers::pi);
  for (float& f : inv_freq) {
    const float wavelen = two_pi / f;
    const float scaled = wavelen > low_freq_wavelen ? f / factor : f;
    if (wavelen < high_freq_wavelen || wavelen > low_freq_wavelen) {
      f = scaled;
      continue;
    }
    const float smooth = (old_context / wavelen - low) / high_minus_low;
    f = (1.0f - smooth) * scaled / factor + smooth * scaled;
  }
}

}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  SSPAN_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, "rope_inv_freq: head_dim {} must be positive and even",
              c.head_dim);
  const int half = c.head_dim / 2;
  const float base = float(c.rope_theta);
  std::vector<float> inv_freq(static_cast<size_t>(half));  // [head_dim / 2]
  for (int i = 0; i < half; ++i) {
    const float exponent = float(2 * i) / float(c.head_dim);
    inv_freq[size_t(i)] = 1.0f / std::pow(base, exponent);
  }
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::None: break;
    case RopeScaling::Type::Linear:
      for (float& f : inv_freq) f /= float(c.rope_scaling.factor);
      break;
    case RopeScaling::Type::Llama3: apply_llama3(c.rope_scaling, inv_freq); break;
  }
  const auto& factors = c.rope_scaling.freq_factors;
  if (!factors.empty()) {
    SSPAN_CHECK(factors.size() == inv_freq.size(), "rope frequency factors: {} for {} frequencies", factors.size(),
                inv_freq.size());
    for (size_t i = 0; i < factors.size(); ++i) inv_freq[i] /= factors[i];
  }
  return inv_freq;
}

}  // namespace sspan
