// The sampler on hand-made logits: min-p, llama.cpp's repeat penalty, the decodable-vocab
// limit, and seeds; and stop strings over a stream of pieces.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "runtime/sampler.h"
#include "runtime/stop_matcher.h"
#include "sspan/error.h"

namespace sspan {
namespace {

TEST(Sampler, MinPKeepsOnlyTokensNearTheMostLikely) {
  // p ~ [0.5, 0.3, 0.1, 0.1] after softmax of these logits.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.1f), std::log(0.1f)};
  SamplingOptions o{.temperature = 1.f, .min_p = 0.5f, .seed = 1};
  Sampler s(o, 4);
  std::set<int32_t> seen;
  for (int i = 0; i < 400; ++i) seen.insert(s.sample(logits, s.uniform()));
  EXPECT_EQ(seen, (std::set<int32_t>{0, 1})) << "0.1 < 0.5 * 0.5: ids 2 and 3 are dropped";
  Sampler open({.temperature = 1.f, .seed = 1}, 4);
  seen.clear();
  for (int i = 0; i < 400; ++i) seen.insert(open.sample(logits, open.uniform()));
  EXPECT_EQ(seen.size(), 4u);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogitsOfRecentTokens) {
  const std::vector<float> logits = {2.0f, 1.5f, -0.5f, -0.4f};
  Sampler greedy({.repeat_penalty = 1.5f, .repeat_last_n = 2}, 4);
  const std::vector<int32_t> history = {1, 0, 0};  // last 2: {0}
  EXPECT_EQ(greedy.sample(logits, 0.f, history), 1) << "2.0 / 1.5 < 1.5";
  const std::vector<int32_t> both = {0, 1};
  EXPECT_EQ(greedy.sample(logits, 0.f, both), 0) << "both penalised: 2.0 / 1.5 > 1.5 / 1.5";
  const std::vector<float> negative = {-0.3f, -0.5f};
  Sampler neg({.repeat_penalty = 2.f, .repeat_last_n = -1}, 2);
  const std::vector<int32_t> h0 = {0};
  EXPECT_EQ(neg.sample(negative, 0.f, h0), 1) << "-0.3 * 2 = -0.6 < -0.5";
  Sampler off({.repeat_penalty = 2.f, .repeat_last_n = 0}, 2);
  EXPECT_EQ(off.sample(negative, 0.f, h0), 0) << "repeat_last_n 0 looks at no token";
}

TEST(Sampler, IdsTheTokenizerCannotDecodeAreNeverChosen) {
  const std::vector<float> logits = {0.1f, 0.2f, 9.0f, 8.0f};  // ids 2, 3 are padding
  Sampler greedy({}, 2);
  EXPECT_EQ(greedy.sample(logits, 0.f), 1);
  Sampler hot({.temperature = 5.f, .seed = 3}, 2);
  for (int i = 0; i < 200; ++i) EXPECT_LT(hot.sample(logits, hot.uniform()), 2);
}

TEST(Sampler, TheSameSeedGivesTheSameDrawsAndBadOptionsAreErrors) {
  Sampler a({.temperature = 1.f, .seed = 9}, 4), b({.temperature = 1.f, .seed = 9}, 4);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.uniform(), b.uniform());
  EXPECT_THROW(Sampler({.temperature = -1.f}, 4), Error);
  EXPECT_THROW(Sampler({.top_p = 0.f}, 4), Error);
  EXPECT_THROW(Sampler({.min_p = -0.1f}, 4), Error);
  EXPECT_THROW(Sampler({.repeat_penalty = 0.f}, 4), Error);
  EXPECT_THROW(Sampler({.repeat_last_n = -2}, 4), Error);
}

TEST(StopMatcher, HoldsBackAPossibleStartAndCutsAtTheFirstStop) {
  StopMatcher m({"END", "\n\n"});
  std::string out;
  out += m.push("abc E");
  EXPECT_EQ(out, "abc ") << "'E' may begin END";
  out += m.push("N");
  EXPECT_EQ(out, "abc ");
  out += m.push("x");
  EXPECT_EQ(out, "abc ENx") << "not END after all";
  out += m.push("y\n");
  out += m.push("\nrest END");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(out, "abc ENxy");
  EXPECT_EQ(m.push("more"), "");
}

TEST(StopMatcher, WithoutStopsEverythingPassesAndFinishReleasesTheHeldTail) {
  StopMatcher none;
  EXPECT_EQ(none.push("a b"), "a b");
  StopMatcher m({"stop"});
  EXPECT_EQ(m.push("one st"), "one ");
  EXPECT_EQ(m.finish(), "st");
  EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace sspan
