// ROUGE against values computed with the reference rouge-score package (no stemming).
#include <gtest/gtest.h>

#include "eval/rouge.h"

namespace sspan::eval {
namespace {

TEST(Rouge, MatchesTheReferencePackage) {
  struct Case {
    const char* ref;
    const char* pred;
    double r1, r2, rl, rlsum;
  };
  const Case cases[] = {
      {"the cat sat on the mat", "the cat on the mat", 0.909091, 0.666667, 0.909091, 0.909091},
      {"Police arrested two men.\nThe car was found later in Leeds.",
       "Two men were arrested by police.\nLater the car was found.", 0.818182, 0.4, 0.545455, 0.545455},
      {"a b c", "x y z", 0, 0, 0, 0},
  };
  for (const auto& c : cases) {
    const RougeScores s = rouge(c.ref, c.pred);
    EXPECT_NEAR(s.rouge1, c.r1, 1e-6) << c.ref;
    EXPECT_NEAR(s.rouge2, c.r2, 1e-6) << c.ref;
    EXPECT_NEAR(s.rougeL, c.rl, 1e-6) << c.ref;
    EXPECT_NEAR(s.rougeLsum, c.rlsum, 1e-6) << c.ref;
  }
}

TEST(Rouge, TokensAreLowercaseAlphanumericRuns) {
  EXPECT_EQ(rouge_tokens("Hello, World! It's 2024."), (std::vector<std::string>{"hello", "world", "it", "s", "2024"}));
  EXPECT_TRUE(rouge_tokens("  ,;  ").empty());
}

}  // namespace
}  // namespace sspan::eval
