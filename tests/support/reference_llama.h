#pragma once
// An independent, naive float64 LLaMA forward over a whole sequence with an explicit
// attention mask: the reference the engine's fp32 forward, its span attention and its
// greedy tokens are checked against. Written from the HF formulas, sharing no code with
// the engine's ops.
#include <cstdint>
#include <vector>

#include "sspan/checkpoint.h"
#include "sspan/config.h"

namespace sspan::test {

// Logits [T][V] of every position. mask[t][j] says whether position t attends to j;
// an empty mask means causal (j <= t).
std::vector<std::vector<double>> reference_logits(const ModelConfig& config, const Checkpoint& ckpt,
                                                  const std::vector<int32_t>& ids,
                                                  const std::vector<std::vector<bool>>& mask = {});

}  // namespace sspan::test
