#include "expr.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "common/check.h"

namespace sspan::data {

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

bool apply_op(char op, int64_t a, int64_t b, int64_t& out) {
  __int128 r = 0;  // operands are below 10^10, so a product fits in 128 bits
  switch (op) {
    case '+': r = __int128(a) + b; break;
    case '-': r = __int128(a) - b; break;
    case '*': r = __int128(a) * b; break;
    case '/':
      if (b == 0) return false;
      r = floor_div(a, b);
      break;
    default: return false;
  }
  if (r >= kNumberLimit || r <= -kNumberLimit) return false;
  out = int64_t(r);
  return true;
}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Expr parse() {
    SSPAN_CHECK(!text_.empty(), "arith expression is empty");
    SSPAN_CHECK(text_.size() <= kMaxExprChars, "arith expression is {} characters long, more than the limit of {}",
                text_.size(), kMaxExprChars);
    parse_sum();
    skip_spaces();
    SSPAN_CHECK(pos_ == text_.size(), "arith expression '{}': unexpected '{}' at column {}",
                text_, text_[pos_], pos_ + 1);
    const int depth = expr_depth(expr_);
    SSPAN_CHECK(depth <= kMaxExprDepth, "arith expression: operations nest {} deep, more than the limit of {}", depth,
                kMaxExprDepth);
    return std::move(expr_);
  }

 private:
  int parse_sum() {
    int lhs = parse_product();
    for (char c; (c = peek()) == '+' || c == '-';) {
      ++pos_;
      lhs = add_op(c, lhs, parse_product());
    }
    return lhs;
  }
  int parse_product() {
    int lhs = parse_atom();
    for (char c; (c = peek()) == '*' || c == '/';) {
      ++pos_;
      lhs = add_op(c, lhs, parse_atom());
    }
    return lhs;
  }
  int parse_atom() {
    const char c = peek();
    if (c == '(') {
      // Each open parenthesis is one level of recursion here: bound it.
      SSPAN_CHECK(++open_parens_ <= kMaxExprDepth,
                  "arith expression: parentheses nest more than {} deep at column {}", kMaxExprDepth, pos_ + 1);
      ++pos_;
      const int inner = parse_sum();
      SSPAN_CHECK(peek() == ')', "arith expression '{}': missing ')' at column {}", text_, pos_ + 1);
      ++pos_;
      --open_parens_;
      return inner;
    }
    bool negative = false;
    if (c == '-') {
      negative = true;
      ++pos_;
    }
    const size_t start = pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    SSPAN_CHECK(pos_ > start, "arith expression '{}': expected a number at column {}", text_,
                start + 1);
    SSPAN_CHECK(pos_ - start <= size_t(kMaxDigits),
                "arith expression '{}': number at column {} has more than {} digits", text_,
                start + 1, kMaxDigits);
    int64_t v = std::stoll(std::string(text_.substr(start, pos_ - start)));
    expr_.nodes.push_back({0, negative ? -v : v, -1, -1});
    return expr_.root();
  }
  int add_op(char op, int lhs, int rhs) {
    int64_t v = 0;
    SSPAN_CHECK(apply_op(op, expr_.nodes[lhs].value, expr_.nodes[rhs].value, v),
                "arith expression '{}': {} {} {} is a division by zero or exceeds {} digits",
                text_, expr_.nodes[lhs].value, op, expr_.nodes[rhs].value, kMaxDigits);
    expr_.nodes.push_back({op, v, lhs, rhs});
    return expr_.root();
  }
  char peek() {
    skip_spaces();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  void skip_spaces() {
    while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_;
  }

  std::string_view text_;
  size_t pos_ = 0;
  int open_parens_ = 0;
  Expr expr_;
};

int digits_of(int64_t v) {
  int d = 1;
  for (v = v < 0 ? -v : v; v >= 10; v /= 10) ++d;
  return d;
}

}  // namespace

Expr parse_expr(std::string_view text) { return Parser(text).parse(); }

// Written with an explicit stack, not recursion: generated trees may be deep.
std::string print_expr(const Expr& e) {
  struct Task {
    int node;   // >= 0: print this node; -1: append `text`
    bool top;   // the root is printed without parentheses
    char text;
  };
  std::string out;
  std::vector<Task> pending{{e.root(), true, 0}};
  while (!pending.empty()) {
    const Task t = pending.back();
    pending.pop_back();
    if (t.node < 0) {
      out += t.text;
      continue;
    }
    const ExprNode& n = e.nodes[size_t(t.node)];
    if (n.op == 0) {
      out += std::to_string(n.value);
      continue;
    }
    // The stack pops last-pushed first: push ")" rhs " op " lhs "(" to print them reversed.
    if (!t.top) pending.push_back({-1, false, ')'});
    pending.push_back({n.rhs, false, 0});
    for (char c : {' ', n.op, ' '}) pending.push_back({-1, false, c});
    pending.push_back({n.lhs, false, 0});
    if (!t.top) pending.push_back({-1, false, '('});
  }
  return out;
}

// Operands come before their operation in the arena, so one forward pass suffices.
int expr_depth(const Expr& e) {
  std::vector<int> depth(e.nodes.size(), 0);
  for (size_t i = 0; i < e.nodes.size(); ++i) {
    const ExprNode& n = e.nodes[i];
    if (n.op != 0) depth[i] = 1 + std::max(depth[size_t(n.lhs)], depth[size_t(n.rhs)]);
  }
  return e.nodes.empty() ? 0 : depth.back();
}

int expr_max_digits(const Expr& e) {
  int d = 1;
  for (const ExprNode& n : e.nodes)
    if (n.op == 0) d = std::max(d, digits_of(n.value));
  return d;
}

}  // namespace sspan::data
