#pragma once
// Arithmetic expression trees for the `arith` task: + - * and floor division `/`,
// parsed from text or generated at random, printed with every inner operation in
// parentheses: "(42 * 56) + (5 * 32)".
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sspan::data {

// Every number the task writes (operands, intermediate and final values, decomposition
// terms) has at most this many digits.
inline constexpr int kMaxDigits = 10;
inline constexpr int64_t kNumberLimit = 10'000'000'000;  // 10^kMaxDigits

// Bounds on a parsed expression (the task's own are depth ~10 and under 1,000 characters):
// parentheses nest and operations stack at most kMaxExprDepth deep, and the text is at
// most kMaxExprChars long, so parsing, printing and tracing stay shallow and quick.
inline constexpr int kMaxExprDepth = 64;
inline constexpr size_t kMaxExprChars = 10'000;

// One node of an expression. op == 0: a literal holding `value`; otherwise a binary
// operation over nodes lhs and rhs whose result is `value`.
struct ExprNode {
  char op = 0;
  int64_t value = 0;
  int lhs = -1;
  int rhs = -1;
};

// An expression as an arena of nodes; the root is the last node, and every node comes
// after its operands (lhs, rhs < its own index).
struct Expr {
  std::vector<ExprNode> nodes;
  int root() const { return int(nodes.size()) - 1; }
};

// Python's `//`: the quotient rounded towards negative infinity. b != 0.
int64_t floor_div(int64_t a, int64_t b);

// The result of `a op b` when it is defined and within the number cap; false otherwise
// (division by zero, a result with more than kMaxDigits digits).
bool apply_op(char op, int64_t a, int64_t b, int64_t& out);

// Parse "(42 * 56) + (5 * 32)"; usual precedence, left-associative, integer literals
// (a leading '-' on a literal makes it negative). Throws sspan::Error naming the
// position of the problem, a value over the number cap, or a text beyond the bounds above.
Expr parse_expr(std::string_view text);

// Canonical text: inner operations parenthesised, single spaces around operators.
std::string print_expr(const Expr& e);

int expr_depth(const Expr& e);          // a single operation has depth 1
int expr_max_digits(const Expr& e);     // most digits of any literal

}  // namespace sspan::data
