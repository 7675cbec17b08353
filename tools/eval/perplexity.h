#pragma once
// sspan-eval --score: the perplexity of a text under a span policy, as language modelling
// measures it, with every scored token predicted by a decode step under that policy.
// The text's tokens are cut into chunks; each chunk prefills its first `prefix` tokens and
// is teacher-forced through the scheduler's decode loop (ForcedMode::Decode: one token per
// sequence per step, the next input being the text's next token), so the span applies to
// exactly the steps that predict the scored tokens.
#include <cstdint>
#include <string>
#include <vector>

#include "eval/report.h"
#include "sspan/engine.h"

namespace sspan::eval {

struct TextChunks {
  std::vector<std::vector<int32_t>> chunks;  // [chunk][<= chunk size]: BOS (when the tokenizer adds one) + text ids
  int64_t text_tokens = 0;                   // the whole text's tokens (no BOS)
  int64_t dropped_tokens = 0;                // the tail too short to score (and chunks past `limit`)
};

// The text file `path`, tokenized whole as a new text, cut into consecutive chunks of at
// most `chunk` tokens, BOS first in each when the tokenizer adds one. A final chunk too
// short to score one decode-predicted token (fewer than prefix + 2 tokens) is dropped.
// limit > 0 keeps the first `limit` chunks. An unreadable or empty file, or a text too
// short to score, is an Error naming the file.
TextChunks read_text_chunks(const std::string& path, const Tokenizer& tok, int chunk, int prefix, int limit = 0);

struct ScoreOptions {
  SpanOptions span;
  int prefix = 1;     // tokens of each chunk prefilled (>= 1); the rest are decoded
  int bucket = 256;   // bucket size, in positions within the chunk
};

// Teacher-force every chunk through one scheduler on `engine` (continuous batching over
// its slots) under `o.span`. A chunk of L tokens prefills [0, prefix) and forces
// [prefix, L); the token at `prefix` is predicted by the prefill's last row, so the scored
// tokens are those at positions prefix + 1 .. L - 1, each predicted by the decode step at
// the position before it. Returns, per bucket of the scored token's position (and kAll),
// the chunks reaching it (n), the scored tokens, the sum of their negative log-likelihoods
// (log-softmax of the fp32 logits in float64), the mean sparsity of the decode steps that
// predicted them, and seconds: the run's wall time for kAll; for a bucket, its tokens'
// share of each step's time (a step's time split evenly among the tokens it produced).
std::map<int, Tally> score_chunks(Engine& engine, const std::vector<std::vector<int32_t>>& chunks,
                                  const ScoreOptions& o);

}  // namespace sspan::eval
