// The `lines` layout of the arith task: a left chain written one operation per prompt
// line, each step naming its operation's line and the line before it.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "arith.h"
#include "arith_stream.h"
#include "sspan/error.h"
#include "text_lines.h"

namespace sspan::data {
namespace {

ArithStreamOptions chain_options(int64_t count) {
  ArithStreamOptions opt;
  opt.count = count;
  opt.seed = 21;
  opt.arith.layout = ArithLayout::lines;
  opt.arith.depth_mean = 30, opt.arith.depth_sd = 15;
  opt.arith.literals = std::array<int64_t, 2>{1, 9};
  opt.arith.results = std::array<int64_t, 2>{0, 99};
  opt.arith.op_weights = {2, 2, 1, 0};
  opt.arith.side_depth_max = 0;
  opt.arith.deep_left = 1;
  return opt;
}

TEST(ArithLines, WritesOneOperationPerPromptLine) {
  const ArithRecord r = arith_record_for("((7 + 5) * 3) - 9", ArithLayout::lines);
  EXPECT_EQ(r.prompt, "7 [0]\n+ 5 [1]\n* 3 [2]\n- 9 = [3]\n");
  EXPECT_EQ(r.completion, "[0,1] 7 + 5=12\n[-1,2] 12 * 3=36\n[-1,3] 36 - 9=27\n[-1] 27");
  EXPECT_EQ(r.answer, "27");
  EXPECT_EQ(r.depth, 3);
}

TEST(ArithLines, OneOperationIsWrittenOutThenItsValue) {
  const ArithRecord r = arith_record_for("84 / 6", ArithLayout::lines);
  EXPECT_EQ(r.prompt, "84 [0]\n/ 6 = [1]\n");
  EXPECT_EQ(r.completion, "[0,1] 84 / 6=14\n[-1] 14");
}

TEST(ArithLines, SplitStepsKeepTheirSoLine) {
  // the product split takes two lines; the next step's -1 names the So line
  const ArithRecord r = arith_record_for("(42 * 56) + 7", ArithLayout::lines);
  EXPECT_EQ(r.prompt, "42 [0]\n* 56 [1]\n+ 7 = [2]\n");
  EXPECT_EQ(r.completion,
            "[0,1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n"
            "[-1] So 42 * 56=2352\n"
            "[-1,2] 2352 + 7=2359\n"
            "[-1] 2359");
  EXPECT_EQ(arith_record_for("7 * 56", ArithLayout::lines).completion, "[0,1] 7 * 56=392\n[-1] 392");
  EXPECT_EQ(arith_record_for("(3 - 5) * -42", ArithLayout::lines).completion,
            "[0,1] 3 - 5=-2\n[-1,2] -2 * -42=84\n[-1] 84");
}

TEST(ArithLines, RandomChainsFollowTheLayout) {
  // line k of the prompt is "op b [k]" (the last "op b = [k]"); step k of the trace
  // names prompt line k and the line before it
  int64_t steps = 0;
  for (const ArithRecord& r : [] {
         std::vector<ArithRecord> out;
         write_arith_stream(chain_options(300), [&](const ArithRecord& x) { out.push_back(x); });
         return out;
       }()) {
    const auto prompt = split_lines(r.prompt), trace = split_lines(r.completion);
    const size_t n = prompt.size() - 1;
    ASSERT_EQ(int(n), r.depth) << r.prompt;
    ASSERT_EQ(trace.size(), n + 1) << "no splits with one-digit literals: " << r.completion;
    ASSERT_TRUE(prompt[0].ends_with(" [0]")) << r.prompt;
    int64_t value = std::stoll(prompt[0]);
    for (size_t k = 1; k <= n; ++k) {
      const std::string tail = (k == n ? " = [" : " [") + std::to_string(k) + "]";
      ASSERT_TRUE(prompt[k].ends_with(tail)) << prompt[k];
      const char op = prompt[k][0];
      const int64_t b = std::stoll(prompt[k].substr(2));
      const int64_t next = op == '+' ? value + b : op == '-' ? value - b : value * b;
      ASSERT_TRUE(next >= 0 && next <= 99) << "--results 0,99: " << r.prompt;
      const std::string refs = k == 1 ? "[0,1] " : "[-1," + std::to_string(k) + "] ";
      const std::string want = refs + std::to_string(value) + " " + op + " " + std::to_string(b) + "=" + std::to_string(next);
      ASSERT_EQ(trace[k - 1], want) << r.prompt;
      value = next;
      ++steps;
    }
    EXPECT_EQ(trace[n], "[-1] " + std::to_string(value)) << "the value line: " << r.completion;
    EXPECT_EQ(r.answer, std::to_string(value));
  }
  EXPECT_GT(steps, 300 * 20);
}

TEST(ArithLines, NeedsALeftChain) {
  try {
    arith_record_for("7 + (5 * 3)", ArithLayout::lines);
    FAIL() << "a right-nested operation has no line of its own";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'7 + (5 * 3)' is not a left chain"), std::string::npos) << e.what();
  }
  ArithStreamOptions opt = chain_options(3);
  opt.arith.side_depth_max = -1;
  try {
    write_arith_stream(opt, [](const ArithRecord&) {});
    FAIL() << "bushy trees cannot be written one operation per line";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--layout lines writes left chains"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sspan::data
