// The token-length filter of the arith stream (uses the real LLaMA tokenizer when present).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "arith_stream.h"
#include "sspan/error.h"
#include "sspan/tokenizer.h"
#include "support/test_paths.h"

namespace sspan::data {
namespace {

std::vector<ArithRecord> stream(const ArithStreamOptions& opt) {
  std::vector<ArithRecord> out;
  write_arith_stream(opt, [&](const ArithRecord& r) { out.push_back(r); });
  return out;
}

TEST(ArithFilter, KeepsOnlyCompletionsInTheTokenRange) {
  const auto path = test::llama_tokenizer_path();
  if (path.empty()) GTEST_SKIP() << "LLaMA tokenizer not found (set SSPAN_LLAMA_TOKENIZER)";
  const Tokenizer tok = Tokenizer::load(path);
  ArithStreamOptions opt;
  opt.count = 300;
  opt.seed = 9;
  opt.tokenizer = path.string();
  opt.min_tokens = 60;
  opt.max_tokens = 120;
  opt.threads = 1;
  const auto serial = stream(opt);
  ASSERT_EQ(serial.size(), 300u);
  for (const ArithRecord& r : serial) {
    const size_t n = tok.encode_continuation(r.completion).size();
    EXPECT_GE(n, 60u) << r.completion;
    EXPECT_LE(n, 120u) << r.completion;
  }
  opt.threads = 2;
  const auto parallel = stream(opt);
  for (size_t i = 0; i < serial.size(); ++i) ASSERT_EQ(to_jsonl(serial[i]), to_jsonl(parallel[i]));
}

TEST(ArithFilter, BadOptionsAreErrors) {
  ArithStreamOptions opt;
  opt.count = 1;
  opt.max_tokens = 10;
  EXPECT_THROW(stream(opt), Error);  // no --tokenizer
  opt.tokenizer = "/nonexistent/tokenizer.model";
  EXPECT_THROW(stream(opt), Error);
  opt.min_tokens = 20;
  EXPECT_THROW(stream(opt), Error);  // min above max
}

TEST(ArithFilter, ImpossibleRangeStopsWithAMessage) {
  const auto path = test::llama_tokenizer_path();
  if (path.empty()) GTEST_SKIP() << "LLaMA tokenizer not found (set SSPAN_LLAMA_TOKENIZER)";
  ArithStreamOptions opt;
  opt.count = 1;
  // One-digit single operations: never 5000 tokens.
  opt.arith.depth_mean = 1, opt.arith.depth_sd = 0, opt.arith.digits_mean = 1, opt.arith.digits_sd = 0;
  opt.tokenizer = path.string();
  opt.min_tokens = 5000;
  try {
    stream(opt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fit --min-tokens 5000"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sspan::data

namespace sspan::data {
namespace {

TEST(ArithExclude, HeldOutSetsShareNoPromptWithTheExcludedSet) {
  ArithStreamOptions opt;
  opt.count = 400;
  opt.seed = 1;
  opt.arith.depth_mean = 1, opt.arith.depth_sd = 0.5, opt.arith.digits_mean = 1, opt.arith.digits_sd = 0.5;
  std::unordered_set<std::string> train;
  write_arith_stream(opt, [&](const ArithRecord& r) { train.insert(r.prompt); });
  opt.seed = 2;  // small expressions: another seed repeats many of them ...
  int repeats = 0;
  write_arith_stream(opt, [&](const ArithRecord& r) { repeats += train.contains(r.prompt); });
  EXPECT_GT(repeats, 0);
  opt.exclude_prompts = train;  // ... unless they are excluded
  int written = 0;
  write_arith_stream(opt, [&](const ArithRecord& r) {
    EXPECT_FALSE(train.contains(r.prompt)) << r.prompt;
    ++written;
  });
  EXPECT_EQ(written, 400);
}

}  // namespace
}  // namespace sspan::data
