// libFuzzer target: arbitrary text, split into arbitrary token texts, pushed through a
// SpanState for each grammar. Checks the invariants every consumer of the span relies on:
// t is attended, ranges are sorted, merged and inside [0, t], the count matches, a dense
// token attends 0..t, and the blocked encoding decodes back to the same ranges.
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string_view>

#include "sspan/span.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "span invariant violated: %s\n", what);
    std::abort();
  }
}

void check_last(const sspan::SpanState& state) {
  const int32_t t = state.last_pos();
  const auto ranges = state.last_attended();
  require(!ranges.empty(), "attended set is empty");
  int64_t count = 0;
  int32_t prev_end = -1;
  for (const auto& r : ranges) {
    require(r.begin < r.end, "empty range");
    require(r.begin > prev_end, "ranges unsorted, overlapping or unmerged");
    require(r.begin >= 0 && r.end <= t + 1, "range outside [0, t]");
    count += r.end - r.begin;
    prev_end = r.end;
  }
  require(ranges.back().end == t + 1, "t not attended");
  require(count == state.last_count(), "count differs from the ranges");
  if (!state.last_sparse())
    require(ranges.size() == 1 && ranges[0].begin == 0, "dense token does not attend 0..t");
  sspan::SpanBatch batch;
  batch.reset(state.block_size());
  state.append_last(batch);
  require(batch.row_ranges(0) == ranges, "blocked encoding does not round trip");
  require(batch.row_count(0) == count, "blocked count differs");
  require(batch.row_is_dense(0) == !state.last_sparse(), "a dense token's row is not the dense row");
  batch.validate();  // throws, and the fuzzer reports it, if the encoder broke a rule
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // Byte 0 picks the block size and the prompt length; the rest is text whose bytes
  // with the high bit pattern 0xFF mark token boundaries (and are dropped), so token
  // texts of every length, empty ones included, occur.
  static constexpr int kBlockSizes[] = {16, 32, 64, 128, 256};
  const int block_size = kBlockSizes[data[0] % 5];
  const size_t n_prompt = data[0] / 5;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  for (const char* name : {"arith", "summary", ""}) {
    auto grammar = *name ? std::make_shared<const sspan::SpanGrammar>(sspan::SpanGrammar::builtin(name))
                         : nullptr;
    sspan::SpanState state(grammar, block_size);
    state.push("", true);
    check_last(state);
    size_t n_tokens = 1;
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
      if (i < text.size() && text[i] != '\xFF') continue;
      state.push(text.substr(start, i - start), n_tokens < n_prompt);
      check_last(state);
      ++n_tokens;
      start = i + 1;
    }
  }
  return 0;
}
