// Details of the span rule: line membership of tokens that straddle newlines, tokens
// with empty text, the header before any anchor exists, and the per-line cache.
#include <gtest/gtest.h>

#include "span_test_util.h"
#include "sspan/error.h"

namespace sspan {
namespace {

using test::grammar;
using test::push_all;
using V = std::vector<PosRange>;

// "] 4" completes the list and continues the line: sparse. "]\n" ends the line: dense.
TEST(SpanRule, ClosingTokenIsSparseUnlessItEndsTheLine) {
  SpanState state(grammar("arith"));
  // positions: 0 BOS | 1 "a [0]\n" (line 0) | 2 "[-1" 3 "] 4" 4 " x" 5 "\n" (line 1)
  //            | 6 "[-1" 7 "]\n" (line 2)
  const auto steps = push_all(state, {"a [0]\n", "[-1", "] 4", " x", "\n", "[-1", "]\n"}, 2);
  EXPECT_FALSE(steps[2].sparse);
  EXPECT_TRUE(steps[3].sparse);
  EXPECT_EQ(steps[3].attended, (V{{0, 4}}));  // BOS + line 0 + own line 2..3
  EXPECT_TRUE(steps[4].sparse);
  EXPECT_FALSE(steps[5].sparse);
  EXPECT_EQ(steps[5].line, 1);
  EXPECT_FALSE(steps[6].sparse);
  EXPECT_FALSE(steps[7].sparse);  // carries both the closing bracket and the newline
  EXPECT_EQ(steps[7].line, 2);
  EXPECT_EQ(state.events().sparse_lines, 2);
}

// A sparse line that does not name its neighbour leaves a gap.
TEST(SpanRule, SparseLineSkipsUnnamedLines) {
  SpanState state(grammar("arith"));
  // 0 BOS, 1 "t [0]\n" (line 0), 2 "u\n" (line 1), 3 "[0]" 4 " v" (line 2)
  const auto steps = push_all(state, {"t [0]\n", "u\n", "[0]", " v"}, 2);
  EXPECT_EQ(steps[3].attended, (V{{0, 2}, {3, 4}}));
  EXPECT_EQ(steps[4].attended, (V{{0, 2}, {3, 5}}));
  EXPECT_EQ(state.last_count(), 4);
  EXPECT_DOUBLE_EQ(state.last_sparsity(), 1.0 - 4.0 / 5.0);
  EXPECT_EQ(state.last_tail_start(), 3);
}

// A token whose text holds several newlines ends the line of its first character; the
// lines wholly inside it have no positions but still define anchors.
TEST(SpanRule, TokenSpanningSeveralLines) {
  SpanState state(grammar("arith"));
  // 0 BOS (line 0), 1 "q\nr [0]\ns [1]\n[0" (ends line 0; lines 1, 2 inside; line 3
  // begins with "[0"), 2 ",1] w" (line 3)
  const auto steps = push_all(state, {"q\nr [0]\ns [1]\n[0", ",1] w"}, 1);
  EXPECT_EQ(steps[1].line, 0);
  EXPECT_FALSE(steps[1].sparse);
  EXPECT_EQ(steps[2].line, 3);
  EXPECT_TRUE(steps[2].sparse);
  // Lines 1 and 2 (named) have no positions; line 0 is a prompt line (its first token,
  // BOS, is prompt) before the first anchored line (line 1), so it is header.
  EXPECT_EQ(steps[2].attended, (V{{0, 3}}));
}

// A list completed by the text after a newline makes the next line's first token sparse.
TEST(SpanRule, ListCompletedBeforeTheLinesFirstToken) {
  SpanState state(grammar("arith"));
  // 0 BOS, 1 "a [0]" 2 "\n[0] " (ends line 0, line 1 text "[0] "), 3 "b" (line 1)
  const auto steps = push_all(state, {"a [0]", "\n[0] ", "b"}, 3);
  EXPECT_FALSE(steps[2].sparse);
  EXPECT_TRUE(steps[3].sparse);
  EXPECT_EQ(steps[3].line, 1);
  EXPECT_EQ(steps[3].attended, (V{{0, 4}}));
  EXPECT_EQ(state.last_tail_start(), 3);
}

// Empty-text tokens (control tokens) belong to the current line and take its mode.
TEST(SpanRule, EmptyTextTokenTakesTheCurrentLinesMode) {
  SpanState state(grammar("arith"));
  const auto steps = push_all(state, {"a [0]\n", "x\n", "[0]", " y", "", "\n", ""}, 2);
  EXPECT_TRUE(steps[5].sparse);
  EXPECT_EQ(steps[5].line, 2);
  EXPECT_EQ(steps[5].attended, (V{{0, 2}, {3, 6}}));
  EXPECT_FALSE(steps[7].sparse);  // the empty token after "\n" begins line 3
  EXPECT_EQ(steps[7].line, 3);
}

// Before any anchored line exists the header is BOS and every ended prompt line; once
// one exists, the prompt lines before it.
TEST(SpanRule, HeaderBeforeAndAfterTheFirstAnchoredLine) {
  SpanState state(grammar("arith"));
  // 0 BOS, 1 "do\n" (line 0, prompt), 2 "it\n" (line 1, prompt), 3 "gen\n" (line 2,
  // generated), 4 "[-1]" 5 " z" (line 3)
  auto steps = push_all(state, {"do\n", "it\n", "gen\n", "[-1]", " z"}, 3);
  EXPECT_EQ(steps[5].attended, (V{{0, 6}}));  // header lines 0,1 + named line 2 + own
  SpanState skip(grammar("arith"));
  // As above but the reference names nothing in between: line 2 is not in the header.
  steps = push_all(skip, {"do\n", "it\n", "gen [0]\n", "more\n", "[0]", " z"}, 3);
  // First anchored line is line 2: header = BOS + lines 0, 1 (prompt).
  EXPECT_EQ(steps[6].attended, (V{{0, 4}, {5, 7}}));

  SpanState late(grammar("arith"));
  // Prompt lines after the first anchored line are not header.
  steps = push_all(late, {"a [0]\n", "note\n", "b [1]\n", "[1]", " z"}, 4);
  EXPECT_EQ(steps[5].attended, (V{{0, 1}, {3, 6}}));
}

TEST(SpanRule, SummaryAnchorsAndImplicitPreviousListLine) {
  SpanState state(grammar("summary"));
  // 0 BOS, 1 "Do it.\n" (line 0), 2 "0: a\n" (1), 3 "1 :b\n" (2), 4 "(0)" 5 " s\n" (3),
  // 6 "x\n" (4, no list), 7 "(1)" 8 " t" (5)
  const auto steps =
      push_all(state, {"Do it.\n", "0: a\n", "1 :b\n", "(0)", " s\n", "x\n", "(1)", " t"}, 4);
  EXPECT_TRUE(steps[4].sparse);
  EXPECT_EQ(steps[4].attended, (V{{0, 3}, {4, 5}}));  // header line 0, anchor 0 = line 1
  EXPECT_TRUE(steps[8].sparse);
  // header (BOS, line 0) + anchor 1 (line 2) + previous list line 3 + own line
  EXPECT_EQ(steps[8].attended, (V{{0, 2}, {3, 6}, {7, 9}}));
}

TEST(SpanRule, RangeNamesEveryAnchorInIt) {
  SpanState state(grammar("summary"));
  const auto steps = push_all(state, {"0 : a\n", "1 : b\n", "2 : c\n", "(0-1,2)", " s"}, 4);
  EXPECT_TRUE(steps[5].sparse);
  EXPECT_EQ(steps[5].attended, (V{{0, 6}}));
  EXPECT_EQ(state.events().sparse_lines, 1);
}

// append_last appends the line's cached blocks: inside a line only pos moves.
TEST(SpanRule, StepsInsideALineChangeOnlyT) {
  for (int block_size : {16, 32, 64, 128, 256}) {
    SpanState state(grammar("arith"), block_size);
    state.push("", true);
    std::string filler(300, 'x');
    state.push(filler + " [0]\n", true);
    state.push(filler + "\n", false);
    state.push("[0]", false);
    SpanBatch first;
    first.reset(block_size);
    state.append_last(first);
    for (int step = 0; step < 40; ++step) {
      state.push(" y", false);
      SpanBatch batch;
      batch.reset(block_size);
      state.append_last(batch);
      EXPECT_EQ(batch.block_ids, first.block_ids);
      EXPECT_EQ(batch.masks, first.masks);
      EXPECT_EQ(batch.tail_start, first.tail_start);
      EXPECT_EQ(batch.pos[0], first.pos[0] + step + 1);
      EXPECT_EQ(batch.row_ranges(0), state.last_attended());
      EXPECT_EQ(batch.row_count(0), state.last_count());
    }
  }
}

TEST(SpanRule, AppendLastBuildsABatchOfRequests) {
  SpanState a(grammar("arith"), 32), b(nullptr, 32), c(grammar("summary"), 32);
  push_all(a, {"a [0]\n", "x\n", "[0]", " y"}, 2);
  push_all(b, {"p\n", "q"}, 1);
  push_all(c, {"0 : a\n", "(0)", " s"}, 2);
  SpanBatch batch;
  batch.reset(32);
  a.append_last(batch);
  b.append_last(batch);
  c.append_last(batch);
  ASSERT_EQ(batch.rows(), 3);
  EXPECT_EQ(batch.row_ranges(0), a.last_attended());
  EXPECT_EQ(batch.row_ranges(1), b.last_attended());
  EXPECT_EQ(batch.row_ranges(2), c.last_attended());
  EXPECT_EQ(batch.indptr[2], batch.indptr[1]);  // the dense row lists no blocks
  EXPECT_EQ(batch.tail_start[1], 0);
  SpanBatch other;
  other.reset(64);
  EXPECT_THROW(a.append_last(other), Error);
}

TEST(SpanRule, QueriesBeforeAnyTokenAndBadBlockSizeAreErrors) {
  SpanState state(grammar("arith"));
  EXPECT_THROW(state.last_pos(), Error);
  EXPECT_THROW(state.last_attended(), Error);
  EXPECT_THROW(SpanState(grammar("arith"), 48), Error);
}

}  // namespace
}  // namespace sspan
