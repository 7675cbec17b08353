// sspan-datagen arith --expr on hostile expressions: nesting and length are bounded with
// a message (50,000 parentheses or a 65,000-operator chain used to overflow the stack),
// and printing and depth do not recurse.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "arith.h"
#include "expr.h"
#include "sspan/error.h"

namespace sspan::data {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::string& text) {
  try {
    parse_expr(text);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an sspan::Error";
  return {};
}

std::string parens(int n) { return std::string(size_t(n), '(') + "1 + 2" + std::string(size_t(n), ')'); }
std::string chain(int ops) {
  std::string s = "1";
  for (int i = 0; i < ops; ++i) s += " + 1";
  return s;
}

TEST(ExprLimits, DeepParenthesesAreAnError) {
  EXPECT_THAT(error_of(std::string(50'000, '(') + "1" + std::string(50'000, ')')), HasSubstr("characters long"));
  EXPECT_THAT(error_of(std::string(4'000, '(') + "1" + std::string(4'000, ')')),
              HasSubstr("parentheses nest more than 64 deep"));
  EXPECT_NO_THROW(parse_expr(parens(kMaxExprDepth)));
  EXPECT_THAT(error_of(parens(kMaxExprDepth + 1)), HasSubstr("parentheses nest more than 64 deep"));
}

TEST(ExprLimits, LongOperatorChainsAreAnError) {
  EXPECT_THAT(error_of(chain(65'000)), HasSubstr("more than the limit of 10000"));
  EXPECT_THAT(error_of(chain(2'000)), HasSubstr("operations nest 2000 deep"));
  EXPECT_EQ(expr_depth(parse_expr(chain(kMaxExprDepth))), kMaxExprDepth);
  EXPECT_THAT(error_of(chain(kMaxExprDepth + 1)), HasSubstr("operations nest 65 deep"));
}

TEST(ExprLimits, PrintAndDepthHandleDeepTreesWithoutRecursion) {
  // A generated-style tree far deeper than any parse allows: a right-leaning chain.
  Expr e;
  e.nodes.push_back({0, 1, -1, -1});
  for (int i = 0; i < 200'000; ++i) {
    e.nodes.push_back({0, 1, -1, -1});
    e.nodes.push_back({'*', 1, int(e.nodes.size()) - 1, int(e.nodes.size()) - 2});
  }
  EXPECT_EQ(expr_depth(e), 200'000);
  const std::string text = print_expr(e);
  EXPECT_EQ(text.substr(0, 12), "1 * (1 * (1 ");
  EXPECT_EQ(text.size(), 200'001 + 200'000 * 3 + 2 * 199'999);
}

TEST(ExprLimits, PrintRoundTripsThroughTheParser) {
  for (const char* text : {"(42 * 56) + (5 * 32)", "((1 - 2) * 3) / (4 + -5)", "1 + 2"}) {
    EXPECT_EQ(print_expr(parse_expr(text)), text);
  }
}

}  // namespace
}  // namespace sspan::data
