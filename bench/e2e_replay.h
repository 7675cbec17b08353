#pragma once
// The replay of `sspan-bench e2e`: a dataset's reference completions teacher-forced
// through the scheduler exactly as generation runs (prefill the prompt, then one token
// per sequence per step with the same span state and sampling work; the next input is
// the reference's next token). Separate from the CLI so the tests replay the same way.
#include <string>
#include <vector>

#include "sspan/engine.h"
#include "sspan/scheduler.h"

namespace sspan::bench {

struct ReplayRecord {
  std::string source;                // "FILE:LINE", for messages
  std::vector<int32_t> prompt_ids;   // BOS + prompt
  std::vector<int32_t> completion;   // the reference completion's ids
  int positions() const { return int(prompt_ids.size() + completion.size()) - 1; }  // that go through the model
};

// Records of a JSONL file of {"prompt": ..., "completion": ...} objects (sspan-datagen
// arith|summary); a line without both strings, or an empty completion, is an error naming
// the line. limit > 0 keeps the first `limit` records.
std::vector<ReplayRecord> read_replay_records(const std::string& path, const Tokenizer& tok, int limit = 0);

// The teacher-forced request of one record under `span` (greedy, EOS not special).
Request replay_request(const ReplayRecord& record, const SpanOptions& span);

struct ReplayTotals {
  double seconds = 0.0;          // wall time of the run
  int64_t records = 0;
  int64_t decode_tokens = 0;     // completion tokens chosen (one per sequence per step)
  int64_t decode_positions = 0;  // of those, the positions processed by decode rows
  int64_t attended = 0;          // sum of |S_t| over the decode positions
  double sparsity_sum = 0.0;     // sum of per-position sparsity over the decode positions
};

// Replay `records` through one scheduler on `engine` (its slots refilled from the queue as
// sequences end); checks that every request replayed its whole completion.
ReplayTotals replay(Engine& engine, const std::vector<const ReplayRecord*>& records, const SpanOptions& span);

}  // namespace sspan::bench
