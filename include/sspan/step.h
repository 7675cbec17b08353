#pragma once
// The step-level API (llama.cpp's llama_decode): rows of (token id, position, KV slot),
// each with its span, go through one forward step; the logits of the rows that ask come
// back. KV slots persist across steps until cleared or truncated (Engine::decode and
// friends, include/sspan/engine.h).
#include <cstdint>
#include <span>

#include "sspan/span.h"

namespace sspan {

// Which keys one row attends to. The mode is always explicit.
struct RowSpan {
  enum class Mode {
    Dense,    // [0, pos]
    Tracker,  // the step pushes the row's token text into `tracker` (a request's span
              // policy state, whose next position must be pos) and uses its span
    Ranges,   // `ranges`: sorted, disjoint, within [0, pos], the last ending at pos + 1
  };
  Mode mode = Mode::Dense;
  SpanTracker* tracker = nullptr;
  bool in_prompt = false;  // Tracker: the token belongs to the prompt
  std::span<const PosRange> ranges;

  static RowSpan dense() { return {}; }
  static RowSpan push(SpanTracker& t, bool in_prompt) { return {Mode::Tracker, &t, in_prompt, {}}; }
  static RowSpan attended(std::span<const PosRange> r) { return {Mode::Ranges, nullptr, false, r}; }
};

struct StepRow {
  int32_t token = 0;
  int32_t pos = 0;   // must be the slot's length: rows append to their slot, in order
  int32_t slot = 0;  // KV slot, 0 <= slot < max_batch
  bool logits = false;  // return this row's logits
  RowSpan span;
};

}  // namespace sspan
