#pragma once
// Next-token selection from one row of logits: greedy, or temperature -> top-k -> top-p
// (the Hugging Face order) and a draw from a seeded generator.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "model/backend.h"
#include "sspan/engine.h"

namespace sspan {

class Sampler {
 public:
  // Checks the options (temperature >= 0, top_k >= 0, 0 < top_p <= 1).
  Sampler(const SamplingOptions& options, int vocab_size);
  // One sequence's next token from its logits (finite: the backends check them in
  // read_logits) and u01, this token's draw from uniform() (one draw per token whether the
  // host or a device picks it). Greedy ignores u01.
  int32_t sample(std::span<const float> logits, float u01);
  // One draw in [0, 1) from this sequence's generator, for token selection on a device.
  float uniform() { return std::uniform_real_distribution<float>(0.f, 1.f)(rng_); }
  SamplingConfig config() const { return {opt_.temperature, opt_.top_k, opt_.top_p}; }

 private:
  SamplingOptions opt_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // scratch [V], reserved once
};

// Index of the largest logit, the first on ties; NaN is never chosen (all NaN: an error).
int32_t argmax(std::span<const float> logits);

}  // namespace sspan
