// Random expressions: a tree of exactly the drawn depth whose literals have 1..digits
// digits; an operation whose result would break the number cap (or divide by zero) is
// redrawn locally, so large settings do not restart whole expressions.
#include <algorithm>
#include <cmath>

#include "arith.h"
#include "common/check.h"
#include "rng.h"

namespace sspan::data {
namespace {

constexpr char kOps[4] = {'+', '-', '*', '/'};
constexpr int kOpTries = 8;

int64_t pow10(int n) {
  int64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

int draw_count(Rng& rng, double mean, double sd, int hi) {
  const double v = std::round(rng.normal(mean, sd));
  return int(std::clamp(v, 1.0, double(hi)));
}

class Generator {
 public:
  Generator(Rng& rng, int digits) : rng_(rng), digits_(digits) {}

  // Appends a subtree of exactly `depth` levels of operations; returns its node index.
  int subtree(Expr& e, int depth) {
    if (depth == 0) return literal(e);
    for (;;) {
      const size_t mark = e.nodes.size();
      // One side carries the full depth so the tree has exactly `depth` levels.
      const int other = int(rng_.uniform(0, depth - 1));
      const bool deep_left = rng_.uniform(0, 1) == 0;
      const int lhs = subtree(e, deep_left ? depth - 1 : other);
      const int rhs = subtree(e, deep_left ? other : depth - 1);
      for (int t = 0; t < kOpTries; ++t) {
        const char op = kOps[rng_.uniform(0, 3)];
        int64_t v = 0;
        if (apply_op(op, e.nodes[lhs].value, e.nodes[rhs].value, v)) {
          e.nodes.push_back({op, v, lhs, rhs});
          return e.root();
        }
      }
      e.nodes.resize(mark);  // no operation fits these operands: redraw them
    }
  }

 private:
  int literal(Expr& e) {
    const int n = int(rng_.uniform(1, digits_));
    const int64_t lo = n == 1 ? 0 : pow10(n - 1);
    e.nodes.push_back({0, rng_.uniform(lo, pow10(n) - 1), -1, -1});
    return e.root();
  }

  Rng& rng_;
  int digits_;
};

}  // namespace

Expr random_expr(uint64_t seed, uint64_t index, const ArithOptions& opt, int& depth, int& digits) {
  Rng rng(seed, index);
  depth = draw_count(rng, opt.depth_mean, opt.depth_sd, 1 << 20);
  digits = draw_count(rng, opt.digits_mean, opt.digits_sd, kMaxDigits);
  Expr e;
  Generator(rng, digits).subtree(e, depth);
  return e;
}

ArithRecord random_arith_record(uint64_t seed, uint64_t index, const ArithOptions& opt) {
  int depth = 0, digits = 0;
  const Expr e = random_expr(seed, index, opt, depth, digits);
  return arith_record(e, depth, digits);
}

ArithRecord arith_record_for(std::string_view expr_text) {
  const Expr e = parse_expr(expr_text);
  SSPAN_CHECK(e.nodes[e.root()].op != 0, "arith expression '{}' has no operation", expr_text);
  return arith_record(e, expr_depth(e), expr_max_digits(e));
}

}  // namespace sspan::data
