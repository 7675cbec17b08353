// The arith generator: Figure 5, line grammar, determinism, number cap, floor division,
// and clear errors for bad expressions.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12 under -fsanitize=address,undefined warns inside its own <regex> (the std::function
// of a regex state "may be used uninitialized"), a false positive of that compiler.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <gtest/gtest.h>

#include <array>
#include <climits>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "arith.h"
#include "arith_stream.h"
#include "expr.h"
#include "sspan/error.h"
#include "text_lines.h"

namespace sspan::data {
namespace {

std::vector<ArithRecord> stream(const ArithStreamOptions& opt) {
  std::vector<ArithRecord> out;
  write_arith_stream(opt, [&](const ArithRecord& r) { out.push_back(r); });
  return out;
}

TEST(Arith, ReproducesFigure5) {
  const ArithRecord r = arith_record_for("(42 * 56) + (5 * 32)");
  EXPECT_EQ(r.prompt, "(42 * 56) + (5 * 32) [0]\n");
  EXPECT_EQ(r.completion,
            "[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n"
            "[-1] So 42 * 56=2352 [1]\n"
            "[0,1] 5 * 32=160 [2]\n"
            "[0,1,2] 2512");
  EXPECT_EQ(r.answer, "2512");
  EXPECT_EQ(r.depth, 2);
  EXPECT_EQ(r.digits, 2);
}

TEST(Arith, ExpressionTextIsCanonicalised) {
  EXPECT_EQ(arith_record_for("42*56+5*32").prompt, "(42 * 56) + (5 * 32) [0]\n");
  EXPECT_EQ(arith_record_for("1 - 2 - 3").prompt, "(1 - 2) - 3 [0]\n");
}

TEST(Arith, LinesFollowTheGrammar) {
  const std::regex refs_re(R"(^\[(-1|\d+(,\d+)*)\] )");
  const std::regex anchor_re(R"( \[(\d+)\]$)");
  ArithStreamOptions opt;
  opt.count = 300;
  opt.seed = 3;
  for (const ArithRecord& r : stream(opt)) {
    ASSERT_TRUE(r.prompt.ends_with(" [0]\n")) << r.prompt;
    std::set<int> anchors{0};
    int last_anchor = 0;
    const auto lines = split_lines(r.completion);
    ASSERT_FALSE(lines.empty());
    for (size_t i = 0; i < lines.size(); ++i) {
      std::smatch m;
      ASSERT_TRUE(std::regex_search(lines[i], m, refs_re)) << lines[i];
      std::stringstream items(m[1].str());
      for (std::string item; std::getline(items, item, ',');) {
        const int id = std::stoi(item);
        EXPECT_TRUE(id == -1 || anchors.count(id)) << "unknown reference in " << lines[i];
      }
      const bool has_anchor = std::regex_search(lines[i], m, anchor_re);
      if (i + 1 == lines.size()) {
        EXPECT_FALSE(has_anchor) << lines[i];
        EXPECT_TRUE(lines[i].ends_with("] " + r.answer)) << lines[i] << " vs " << r.answer;
      } else if (has_anchor) {
        const int id = std::stoi(m[1].str());
        EXPECT_EQ(id, last_anchor + 1) << lines[i];
        last_anchor = id;
        anchors.insert(id);
      }
    }
  }
}

TEST(Arith, SameSeedSameBytesForAnyThreadCount) {
  ArithStreamOptions opt;
  opt.count = 2500;  // more than one parallel batch
  opt.seed = 42;
  opt.threads = 1;
  const auto serial = stream(opt);
  opt.threads = 3;
  const auto parallel = stream(opt);
  ASSERT_EQ(serial.size(), parallel.size());
  for (size_t i = 0; i < serial.size(); ++i) ASSERT_EQ(to_jsonl(serial[i]), to_jsonl(parallel[i])) << i;
  opt.seed = 43;
  const auto other = stream(opt);
  int differ = 0;
  for (size_t i = 0; i < other.size(); ++i) differ += to_jsonl(other[i]) != to_jsonl(serial[i]);
  EXPECT_GT(differ, 2000);
}

TEST(Arith, DepthAndDigitsFollowTheOptions) {
  ArithStreamOptions opt;
  opt.count = 2000;
  // sd 0: every record has depth 3 and up to 2 digits.
  opt.arith.depth_mean = 3, opt.arith.depth_sd = 0, opt.arith.digits_mean = 2, opt.arith.digits_sd = 0;
  for (const ArithRecord& r : stream(opt)) {
    ASSERT_EQ(r.depth, 3);
    ASSERT_EQ(r.digits, 2);
    const Expr e = parse_expr(r.prompt.substr(0, r.prompt.size() - 5));
    ASSERT_EQ(expr_depth(e), 3) << r.prompt;
    ASSERT_LE(expr_max_digits(e), 2) << r.prompt;
  }
}

TEST(Arith, EveryNumberHasAtMostTenDigits) {
  ArithStreamOptions opt;
  opt.count = 1500;
  // Big numbers: the cap is hit often.
  opt.arith.depth_mean = 4, opt.arith.depth_sd = 2, opt.arith.digits_mean = 9, opt.arith.digits_sd = 1;
  const std::regex number(R"(\d+)");
  size_t longest = 0;
  for (const ArithRecord& r : stream(opt)) {
    const std::string text = r.prompt + r.completion;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), number); it != std::sregex_iterator(); ++it)
      longest = std::max(longest, size_t(it->length()));
  }
  EXPECT_LE(longest, size_t(kMaxDigits));
  EXPECT_GE(longest, size_t(9));  // the cap is approached, so the check means something
}

TEST(Arith, DivisionFloorsLikePython) {
  EXPECT_EQ(floor_div(7, 2), 3);
  EXPECT_EQ(floor_div(-7, 2), -4);
  EXPECT_EQ(floor_div(7, -2), -4);
  EXPECT_EQ(floor_div(-7, -2), 3);
  EXPECT_EQ(floor_div(-6, 3), -2);
  EXPECT_EQ(arith_record_for("(3 - 10) / 2").answer, "-4");
  EXPECT_EQ(arith_record_for("(3 - 10) / 2").completion, "[-1] 3 - 10=-7 [1]\n[0,1] -4");
  EXPECT_EQ(arith_record_for("2 / (3 - 10)").answer, "-1");
}

TEST(Arith, QuotientSplitSubtractsDigitMultiples) {
  EXPECT_EQ(arith_record_for("8914 / 64").completion,
            "[-1] 8914 / 64: 8914 - 64 * 100=8914 - 6400=2514, 2514 - 64 * 30=2514 - 1920=594, "
            "594 - 64 * 9=594 - 576=18, so 8914 / 64=100 + 30 + 9=139\n"
            "[-1] 139");
  // signs differ and a remainder is left: floor goes one below the truncated quotient
  EXPECT_EQ(arith_record_for("(0 - 8914) / 64 + 1").completion,
            "[-1] 0 - 8914=-8914 [1]\n"
            "[0,1] -8914 / 64: 8914 - 64 * 100=8914 - 6400=2514, 2514 - 64 * 30=2514 - 1920=594, "
            "594 - 64 * 9=594 - 576=18, so -8914 / 64=-(100 + 30 + 9) - 1=-140\n"
            "[-1] So -8914 / 64=-140 [2]\n"
            "[0,2] -139");
  EXPECT_EQ(arith_record_for("-640 / 64").completion,
            "[-1] -640 / 64: 640 - 64 * 10=640 - 640=0, so -640 / 64=-10\n[-1] -10");
}

TEST(Arith, ProductSplitKeepsTheLongerOperand) {
  EXPECT_EQ(arith_record_for("42 * 5608").completion,
            "[-1] 42 * 5608=5608 * (40 + 2)=224320 + 11216=235536\n[-1] 235536");
  EXPECT_EQ(arith_record_for("123 * -45").completion,
            "[-1] 123 * -45=123 * (-40 + -5)=-4920 + -615=-5535\n[-1] -5535");
  // a one-digit-like operand (one nonzero digit) is not split
  EXPECT_EQ(arith_record_for("42 * 500").completion, "[-1] 21000");
}

// Every node of a record's expression (the prompt without " [0]\n"), parsed back.
Expr prompt_expr(const ArithRecord& r) { return parse_expr(r.prompt.substr(0, r.prompt.size() - 5)); }

TEST(ArithOptions, OperatorWeightsChooseTheOperators) {
  ArithStreamOptions opt;
  opt.count = 1000;
  opt.arith.depth_mean = 4;
  opt.arith.digits_mean = 1, opt.arith.digits_sd = 0;
  opt.arith.op_weights = {3, 1, 0, 0};  // + three times as often as -, never * or /
  int64_t plus = 0, minus = 0;
  for (const ArithRecord& r : stream(opt))
    for (const ExprNode& n : prompt_expr(r).nodes) {
      ASSERT_TRUE(n.op == 0 || n.op == '+' || n.op == '-') << r.prompt;
      plus += n.op == '+', minus += n.op == '-';
    }
  ASSERT_GT(plus + minus, 3000);
  EXPECT_NEAR(double(plus) / double(plus + minus), 0.75, 0.03);
}

TEST(ArithOptions, LiteralsAndResultsStayInTheirRanges) {
  ArithStreamOptions opt;
  opt.count = 1000;
  opt.arith.depth_mean = 8, opt.arith.depth_sd = 3;
  opt.arith.literals = std::array<int64_t, 2>{1, 9};
  opt.arith.results = std::array<int64_t, 2>{0, 99};
  opt.arith.op_weights = {2, 2, 1, 0};
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  std::set<int64_t> literals;
  for (const ArithRecord& r : stream(opt)) {
    const Expr e = prompt_expr(r);
    ASSERT_EQ(r.digits, 1) << "--literals reports the longest literal";
    for (const ExprNode& n : e.nodes) {
      if (n.op == 0) {
        literals.insert(n.value);
        continue;
      }
      lo = std::min(lo, n.value), hi = std::max(hi, n.value);
    }
    ASSERT_EQ(r.answer, std::to_string(e.nodes[e.root()].value));
  }
  EXPECT_EQ(literals, (std::set<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_GE(lo, 0);
  EXPECT_LE(hi, 99);
  EXPECT_EQ(lo, 0);   // both ends are reached, so the bounds mean something
  EXPECT_EQ(hi, 99);
}

TEST(ArithOptions, SideDepthZeroMakesAChain) {
  ArithStreamOptions opt;
  opt.count = 300;
  opt.arith.depth_mean = 20, opt.arith.depth_sd = 5;
  opt.arith.literals = std::array<int64_t, 2>{1, 9};
  opt.arith.results = std::array<int64_t, 2>{0, 999};
  opt.arith.side_depth_max = 0;
  opt.arith.deep_left = 1;  // (((a op b) op c) op d): solved left to right
  for (const ArithRecord& r : stream(opt)) {
    const Expr e = prompt_expr(r);
    int ops = 0;
    for (const ExprNode& n : e.nodes) {
      if (n.op == 0) continue;
      ++ops;
      ASSERT_EQ(e.nodes[n.rhs].op, 0) << "the right operand is a literal: " << r.prompt;
    }
    ASSERT_EQ(ops, r.depth) << r.prompt;
    ASSERT_EQ(expr_depth(e), r.depth);
    // one result is live at a time: every step after the first names [0] and the line before
    const auto lines = split_lines(r.completion);
    for (size_t i = 1; i < lines.size(); ++i)
      ASSERT_TRUE(lines[i].starts_with("[0," + std::to_string(i) + "] ")) << lines[i];
  }
  opt.arith.deep_left = 0;  // a (b op (c op d)): the deep operand on the right
  for (const ArithRecord& r : stream(opt)) {
    const Expr e = prompt_expr(r);
    for (const ExprNode& n : e.nodes) {
      if (n.op != 0) {
        ASSERT_EQ(e.nodes[n.lhs].op, 0) << r.prompt;
      }
    }
  }
}

TEST(ArithOptions, SideDepthLimitsTheShallowOperand) {
  ArithStreamOptions opt;
  opt.count = 300;
  opt.arith.depth_mean = 9, opt.arith.depth_sd = 0;
  opt.arith.side_depth_max = 2;
  int deepest_side = 0;
  for (const ArithRecord& r : stream(opt)) {
    const Expr e = prompt_expr(r);
    std::vector<int> depth(e.nodes.size(), 0);  // [nodes] depth of each subtree (nodes are post-order)
    for (size_t i = 0; i < e.nodes.size(); ++i) {
      const ExprNode& n = e.nodes[i];
      if (n.op == 0) continue;
      depth[i] = 1 + std::max(depth[size_t(n.lhs)], depth[size_t(n.rhs)]);
      deepest_side = std::max(deepest_side, std::min(depth[size_t(n.lhs)], depth[size_t(n.rhs)]));
    }
    ASSERT_EQ(depth.back(), 9) << r.prompt;
  }
  EXPECT_EQ(deepest_side, 2);
}

TEST(ArithOptions, BadOptionsAreErrors) {
  const auto fails = [](const ArithOptions& a, const char* want) {
    ArithStreamOptions opt;
    opt.count = 5;
    opt.arith = a;
    try {
      stream(opt);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "no error, expected one with '" << want << "'";
  };
  ArithOptions a;
  a.op_weights = {0, 0, 0, 0};
  fails(a, "--op-weights");
  a.op_weights = {1, -1, 0, 0};
  fails(a, "--op-weights");
  a = {};
  a.literals = std::array<int64_t, 2>{9, 1};
  fails(a, "--literals 9,1");
  a = {};
  a.results = std::array<int64_t, 2>{0, kNumberLimit};
  fails(a, "--results");
  a = {};
  a.deep_left = 1.5;
  fails(a, "--deep-left");
  a = {};
  a.side_depth_max = -2;
  fails(a, "--side-depth-max");
  // unsatisfiable: no operation of two literals in 1..2 lands in 50..60; an error, not a hang
  a = {};
  a.literals = std::array<int64_t, 2>{1, 2};
  a.results = std::array<int64_t, 2>{50, 60};
  fails(a, "fits the options");
}

TEST(Arith, BadExpressionsAreErrors) {
  for (const char* bad : {"", "1 +", "(1 + 2", "1 + x", "12345678901 + 1", "5 / (2 - 2)",
                          "99999 * 99999 * 99", "7"}) {
    EXPECT_THROW(arith_record_for(bad), Error) << bad;
  }
  try {
    arith_record_for("(1 + 2");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing ')'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sspan::data
