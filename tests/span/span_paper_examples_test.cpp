// The paper's Figure 5 (arith) and Figure 7 (summary) texts, tokenized with the real
// LLaMA tokenizer: every position's mode and attended set as docs/span-semantics.md
// gives them. Expectations are written per line by hand and turned into positions
// through the line -> position map, which is itself checked against the decoded text.
#include <gtest/gtest.h>

#include <set>

#include "span_test_util.h"
#include "support/llama_tokenizer.h"

namespace sspan {
namespace {

// A line of the example and what its sparse tokens attend besides their own line.
struct LineExpectation {
  std::string text;              // including its '\n' when it has one
  char list_close = 0;           // closing bracket of its reference list; 0: no list
  std::set<int> attended_lines;  // header, named and implicit lines
};

struct Example {
  std::vector<int> ids;
  std::vector<std::string> texts;  // token_bytes of each id
  size_t n_prompt = 0;             // tokens that are prompt, BOS included
};

// BOS + prompt encoded as HF does, the rest as a continuation (as generated text is).
Example tokenize(const Tokenizer& tok, const std::string& prompt, const std::string& completion) {
  Example ex;
  ex.ids = tok.encode(prompt, true);
  ex.n_prompt = ex.ids.size();
  const auto rest = tok.encode_continuation(completion);
  ex.ids.insert(ex.ids.end(), rest.begin(), rest.end());
  for (int id : ex.ids) ex.texts.push_back(tok.token_bytes(id));
  return ex;
}

// Positions [first, end) of each line: a line ends with the token that carries its '\n'.
std::vector<PosRange> line_positions(const Example& ex) {
  std::vector<PosRange> lines{{0, 0}};
  for (size_t p = 0; p < ex.texts.size(); ++p) {
    lines.back().end = int32_t(p) + 1;
    if (ex.texts[p].find('\n') != std::string::npos && p + 1 < ex.texts.size())
      lines.push_back({int32_t(p) + 1, int32_t(p) + 1});
  }
  return lines;
}

void check_example(const Example& ex, const std::vector<LineExpectation>& expected,
                   std::shared_ptr<const SpanGrammar> g, int64_t expected_sparse_lines) {
  const auto lines = line_positions(ex);
  ASSERT_EQ(lines.size(), expected.size());
  // The line map: each line's tokens decode to the line's text (line 0 carries the
  // dummy-prefix space of the encoding).
  for (size_t l = 0; l < lines.size(); ++l) {
    std::string text;
    for (int32_t p = lines[l].begin; p < lines[l].end; ++p) text += ex.texts[size_t(p)];
    EXPECT_EQ(text, (l == 0 ? " " : "") + expected[l].text) << "line " << l;
  }

  for (int block_size : {16, 64, 256}) {
    SpanState state(g, block_size);
    std::vector<std::string> tokens(ex.texts.begin() + 1, ex.texts.end());
    const auto steps = test::push_all(state, tokens, ex.n_prompt);
    ASSERT_EQ(steps.size(), ex.texts.size());
    for (size_t l = 0; l < lines.size(); ++l) {
      const auto& want = expected[l];
      // Where the list completes: the first token after which the line's text holds the
      // closing bracket.
      int32_t complete_at = lines[l].end;  // none
      std::string so_far;
      for (int32_t p = lines[l].begin; p < lines[l].end && want.list_close; ++p) {
        so_far += ex.texts[size_t(p)];
        if (so_far.find(want.list_close) != std::string::npos) {
          complete_at = p;
          break;
        }
      }
      const bool has_newline = want.text.ends_with('\n');
      for (int32_t p = lines[l].begin; p < lines[l].end; ++p) {
        const auto& step = steps[size_t(p)];
        EXPECT_EQ(step.line, int32_t(l)) << "position " << p;
        const bool ends_line = has_newline && p == lines[l].end - 1;
        const bool sparse = p >= complete_at && !ends_line;
        EXPECT_EQ(step.sparse, sparse) << "position " << p << " piece '" << ex.texts[size_t(p)]
                                       << "' line " << l;
        std::set<int32_t> want_set;
        if (sparse) {
          want_set.insert(0);  // BOS
          for (int other : want.attended_lines)
            for (int32_t q = lines[size_t(other)].begin; q < lines[size_t(other)].end; ++q)
              want_set.insert(q);
          for (int32_t q = lines[l].begin; q <= p; ++q) want_set.insert(q);
        } else {
          for (int32_t q = 0; q <= p; ++q) want_set.insert(q);
        }
        std::set<int32_t> got_set;
        for (const auto& r : step.attended)
          for (int32_t q = r.begin; q < r.end; ++q) got_set.insert(q);
        EXPECT_EQ(got_set, want_set) << "position " << p << " line " << l;
      }
    }
    EXPECT_EQ(state.events().sparse_lines, expected_sparse_lines);
    EXPECT_EQ(state.events().dense_fallbacks, 0);
    EXPECT_EQ(state.events().redefined_anchors, 0);
  }
}

TEST(SpanPaperExamples, ArithFigure5) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  const std::vector<LineExpectation> lines = {
      {"(42 * 56) + (5 * 32) [0]\n", 0, {}},
      {"[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n", ']', {0}},
      {"[-1] So 42 * 56=2352 [1]\n", ']', {1}},
      {"[0,1] 5 * 32=160 [2]\n", ']', {0, 2}},
      {"[0,1,2] 2512", ']', {0, 2, 3}},
  };
  std::string completion;
  for (size_t l = 1; l < lines.size(); ++l) completion += lines[l].text;
  const auto ex = tokenize(*tok, lines[0].text, completion);
  // Anchors and references straddle pieces: "[-" is one piece in the completion.
  EXPECT_EQ(tok->piece(ex.ids[ex.n_prompt]), "[-");
  // Header: the prompt line carries anchor [0], so the header is BOS alone.
  check_example(ex, lines, test::grammar("arith"), 4);
}

TEST(SpanPaperExamples, SummaryFigure7) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  const std::vector<LineExpectation> lines = {
      {"Summarize the following article in three sentences and precede each with the "
       "range of line numbers in parentheses.\n", 0, {}},
      {"0 : The city council approved a new park on Monday.\n", 0, {}},
      {"1 : Construction will begin in the spring.\n", 0, {}},
      {"2 : The park will include a playground and a pond.\n", 0, {}},
      {"3 : Residents welcomed the decision at a public meeting.\n", 0, {}},
      // Header = BOS + line 0 (the instruction, before the first anchored line).
      {"(0-1) The council approved a park that will be built from spring.\n", ')', {0, 1, 2}},
      // Line 6 also attends the previous summary sentence, line 5.
      {"(2) It will have a playground and a pond.\n", ')', {0, 3, 5}},
      {"(1-3) Residents welcomed the plan.", ')', {0, 2, 3, 4, 6}},
  };
  std::string prompt, completion;
  for (size_t l = 0; l < 5; ++l) prompt += lines[l].text;
  for (size_t l = 5; l < lines.size(); ++l) completion += lines[l].text;
  const auto ex = tokenize(*tok, prompt, completion);
  check_example(ex, lines, test::grammar("summary"), 3);
}

// The same text under the dense policy: every position attends 0..t.
TEST(SpanPaperExamples, DensePolicyIsDenseEverywhere) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  const auto ex = tokenize(*tok, "(42 * 56) + (5 * 32) [0]\n", "[-1] So 42 * 56=2352 [1]\n[0,1] 5");
  SpanState state(nullptr);
  std::vector<std::string> tokens(ex.texts.begin() + 1, ex.texts.end());
  const auto steps = test::push_all(state, tokens, ex.n_prompt);
  for (size_t p = 0; p < steps.size(); ++p) {
    EXPECT_FALSE(steps[p].sparse);
    EXPECT_EQ(steps[p].attended, (std::vector<PosRange>{{0, int32_t(p) + 1}}));
  }
  EXPECT_EQ(state.events(), SpanEvents{});
}

}  // namespace
}  // namespace sspan
