#pragma once
// Next-token selection from one row of logits, for one request: the repeat penalty
// (llama.cpp's rule over the last repeat_last_n tokens), then greedy, or temperature ->
// top-k -> top-p -> min-p (the Hugging Face order) and a draw from the request's own
// seeded generator. Ids at or above `decodable` (padding rows of the embedding that the
// tokenizer cannot decode) are never chosen.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "sspan/sampling.h"

namespace sspan {

class Sampler {
 public:
  // Checks the options (temperature >= 0, top_k >= 0, 0 < top_p <= 1, 0 <= min_p <= 1,
  // repeat_penalty > 0, repeat_last_n >= -1). decodable: ids [0, decodable) may be chosen.
  Sampler(const SamplingOptions& options, int decodable);

  // The next token from `logits` ([V], V >= decodable) and u01, this token's draw from
  // uniform(). `history` is the request's tokens so far (prompt first); the penalty looks
  // at its last repeat_last_n. Greedy ignores u01.
  int32_t sample(std::span<const float> logits, float u01, std::span<const int32_t> history = {});
  // One draw in [0, 1) from this request's generator. Drawn once per sampled token
  // whether the host or a device chooses it, so the stream never depends on the path.
  float uniform() { return std::uniform_real_distribution<float>(0.f, 1.f)(rng_); }
  bool greedy() const { return opt_.temperature == 0.f; }
  const SamplingOptions& options() const { return opt_; }

 private:
  std::span<const float> penalised(std::span<const float> logits, std::span<const int32_t> history);

  SamplingOptions opt_;
  int decodable_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;                   // [decodable] logits after the penalty
  std::vector<int32_t> recent_;                  // distinct penalised ids of this token
  std::vector<std::pair<float, int32_t>> cand_;  // [decodable] candidates, reserved once
};

// Index of the largest logit, the first on ties (as torch.argmax); NaN is never chosen
// (all NaN: an error).
int32_t argmax(std::span<const float> logits);

// log softmax(logits)[id], in double.
double log_softmax_at(std::span<const float> logits, int32_t id);

}  // namespace sspan
