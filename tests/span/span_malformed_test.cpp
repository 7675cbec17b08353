// Malformed span text never stops generation: the affected line is dense, the event is
// counted in the right counter, and the lines after it work as before.
#include <gtest/gtest.h>

#include "span_test_util.h"

namespace sspan {
namespace {

using test::byte_tokens;
using test::grammar;

struct Outcome {
  std::vector<test::SpanStep> steps;
  SpanEvents events;
};

// Prompt "(1 + 2) [0]\n" then `body` one byte per token, then a well-formed line
// "[0] ok" that must be sparse again.
Outcome run_arith(const std::string& body) {
  SpanState state(grammar("arith"));
  const std::string prompt = "(1 + 2) [0]\n";
  auto tokens = byte_tokens(prompt + body + "[0] ok");
  Outcome out;
  out.steps = test::push_all(state, tokens, prompt.size() + 1);
  out.events = state.events();
  return out;
}

// All positions of line `line` are dense.
void expect_line_dense(const Outcome& o, int32_t line) {
  bool seen = false;
  for (size_t p = 0; p < o.steps.size(); ++p) {
    if (o.steps[p].line != line) continue;
    seen = true;
    EXPECT_FALSE(o.steps[p].sparse) << "position " << p;
    EXPECT_EQ(o.steps[p].attended, (std::vector<PosRange>{{0, int32_t(p) + 1}}));
  }
  EXPECT_TRUE(seen) << "line " << line << " has no positions";
}

void expect_last_line_sparse(const Outcome& o) {
  EXPECT_TRUE(o.steps.back().sparse) << "the line after the bad one must work again";
}

SpanEvents malformed_once() {
  SpanEvents e;
  e.sparse_lines = 1;
  e.dense_fallbacks = 1;
  e.malformed_lists = 1;
  return e;
}

SpanEvents unknown_once() {
  SpanEvents e;
  e.sparse_lines = 1;
  e.dense_fallbacks = 1;
  e.unknown_anchors = 1;
  return e;
}

TEST(SpanMalformed, UnknownAnchor) {
  const auto o = run_arith("[5] x\n");
  expect_line_dense(o, 1);
  EXPECT_EQ(o.events, unknown_once());
  expect_last_line_sparse(o);
}

TEST(SpanMalformed, ReferenceToAnchorOnTheSameLine) {
  const auto o = run_arith("[1] x [1]\n");
  expect_line_dense(o, 1);
  EXPECT_EQ(o.events, unknown_once());
}

TEST(SpanMalformed, ReferenceToALaterAnchor) {
  const auto o = run_arith("[2] x\ny [2]\n");
  expect_line_dense(o, 1);
  EXPECT_EQ(o.events, unknown_once());
}

TEST(SpanMalformed, UnterminatedListBeforeTheNewline) {
  const auto o = run_arith("[0, 1 x\n");
  expect_line_dense(o, 1);
  EXPECT_EQ(o.events, malformed_once());
  expect_last_line_sparse(o);
}

TEST(SpanMalformed, ListThatNeverClosesIsUndecidedUntilTheLineEnds) {
  SpanState state(grammar("arith"));
  test::push_all(state, byte_tokens("a [0]\n[0" + std::string(500, ' ')), 1);
  EXPECT_FALSE(state.last_sparse());
  EXPECT_EQ(state.events().malformed_lists, 0);
  state.push("\n", false);
  EXPECT_EQ(state.events().malformed_lists, 1);
}

TEST(SpanMalformed, EmptyList) {
  const auto o = run_arith("[] x\n");
  expect_line_dense(o, 1);
  EXPECT_EQ(o.events, malformed_once());
}

TEST(SpanMalformed, HugeIds) {
  const auto o = run_arith("[99999999999999999999] x\n");
  expect_line_dense(o, 1);
  EXPECT_EQ(o.events, malformed_once());
  // Ten digits already exceed the id limit.
  EXPECT_EQ(run_arith("[1234567890] x\n").events, malformed_once());
}

TEST(SpanMalformed, GarbageInsideBrackets) {
  for (const char* body : {"[a] x\n", "[0;1] x\n", "[0,,1] x\n", "[0,] x\n", "[ ] x\n", "[+1] x\n",
                           "[0 1] x\n", "[[0]] x\n"}) {
    const auto o = run_arith(body);
    expect_line_dense(o, 1);
    EXPECT_EQ(o.events, malformed_once()) << body;
  }
}

TEST(SpanMalformed, NegativeIdsOtherThanMinusOne) {
  for (const char* body : {"[-2] x\n", "[-0] x\n", "[--1] x\n", "[-1-1] x\n"}) {
    const auto o = run_arith(body);
    expect_line_dense(o, 1);
    EXPECT_EQ(o.events, malformed_once()) << body;
  }
}

TEST(SpanMalformed, PreviousLineOnTheFirstLine) {
  SpanState state(grammar("arith"));
  test::push_all(state, byte_tokens("[-1] x"), 1);
  EXPECT_FALSE(state.last_sparse());
  EXPECT_EQ(state.events().unknown_anchors, 1);
}

TEST(SpanMalformed, RedefinedAnchorLaterWins) {
  SpanState state(grammar("arith"));
  // line 0 "a [0]" (positions 1..6), line 1 "b [0]" (7..12), line 2 "[0] c"
  const auto steps = test::push_all(state, byte_tokens("a [0]\nb [0]\n[0] c"), 1);
  EXPECT_EQ(state.events().redefined_anchors, 1);
  EXPECT_EQ(state.events().sparse_lines, 1);
  EXPECT_TRUE(steps.back().sparse);
  // BOS (header) + line 1 + own line
  EXPECT_EQ(steps.back().attended, (std::vector<PosRange>{{0, 1}, {7, 18}}));
}

TEST(SpanMalformed, SummaryBadRanges) {
  const std::string article = "0 : a\n1 : b\n";
  struct Case {
    const char* line;
    bool unknown;  // else malformed
  };
  for (const Case& c : {Case{"(3-1) s\n", false}, Case{"(0-10) s\n", true}, Case{"() s\n", false},
                        Case{"(-1) s\n", false}, Case{"(0-) s\n", false}, Case{"(1-9999999999) s\n", false},
                        Case{"(0-999999999) s\n", true}, Case{"(0 s\n", false}}) {
    SpanState state(grammar("summary"));
    const auto steps = test::push_all(state, byte_tokens(article + c.line + "(0) ok"), article.size() + 1);
    for (const auto& s : steps) {
      if (s.line == 2) {
        EXPECT_FALSE(s.sparse) << c.line;
      }
    }
    EXPECT_EQ(state.events().unknown_anchors, c.unknown ? 1 : 0) << c.line;
    EXPECT_EQ(state.events().malformed_lists, c.unknown ? 0 : 1) << c.line;
    EXPECT_EQ(state.events().dense_fallbacks, 1) << c.line;
    EXPECT_TRUE(steps.back().sparse) << c.line;
  }
}

// Arbitrary bytes, including invalid UTF-8 and NUL, never throw.
TEST(SpanMalformed, ArbitraryBytesNeverThrow) {
  std::string noise;
  for (int i = 0; i < 2000; ++i) noise.push_back(char((i * 131 + 7) % 256));
  for (const char* name : {"arith", "summary"}) {
    SpanState state(grammar(name), 16);
    EXPECT_NO_THROW(test::push_all(state, byte_tokens(noise), 1));
  }
}

}  // namespace
}  // namespace sspan
