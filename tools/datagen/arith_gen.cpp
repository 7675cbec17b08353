// Random expressions: a tree of exactly the drawn depth whose literals have 1..digits
// digits (or lie in --literals); an operation whose result would break the number cap,
// divide by zero or leave --results is redrawn locally, so large settings do not restart
// whole expressions.
#include <algorithm>
#include <cmath>

#include "arith.h"
#include "common/check.h"
#include "rng.h"

namespace sspan::data {
namespace {

constexpr char kOps[4] = {'+', '-', '*', '/'};
constexpr int kOpTries = 8;
// Operand redraws one record may take before the options are declared unsatisfiable
// (e.g. --results 50,60 with --literals 1,2 has no operation at the leaves).
constexpr int64_t kMaxRedraws = 20000;

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
  Generator(Rng& rng, int digits, const ArithOptions& opt) : rng_(rng), digits_(digits), opt_(opt) {
    for (int w : opt.op_weights) total_weight_ += w;
  }

  // Appends a subtree of exactly `depth` levels of operations; returns its node index.
  int subtree(Expr& e, int depth) {
    if (depth == 0) return literal(e);
    for (;;) {
      const size_t mark = e.nodes.size();
      // One side carries the full depth so the tree has exactly `depth` levels.
      const int side_max = opt_.side_depth_max < 0 ? depth - 1 : std::min(depth - 1, opt_.side_depth_max);
      const int other = int(rng_.uniform(0, side_max));
      const bool deep_left = opt_.deep_left == 0.5 ? rng_.uniform(0, 1) == 0 : rng_.unit() <= opt_.deep_left;
      const int lhs = subtree(e, deep_left ? depth - 1 : other);
      const int rhs = subtree(e, deep_left ? other : depth - 1);
      for (int t = 0; t < kOpTries; ++t) {
        const char op = draw_op();
        int64_t v = 0;
        if (apply_op(op, e.nodes[lhs].value, e.nodes[rhs].value, v) && in_results(v)) {
          e.nodes.push_back({op, v, lhs, rhs});
          return e.root();
        }
      }
      e.nodes.resize(mark);  // no operation fits these operands: redraw them
      SSPAN_CHECK(++redraws_ <= kMaxRedraws,
                  "no arith expression of depth {} fits the options (--literals, --results, "
                  "--op-weights) after {} redraws",
                  depth, kMaxRedraws);
    }
  }

 private:
  // An operator by weight; equal weights draw uniform(0, 3), the paper setting's draw.
  char draw_op() {
    int64_t r = rng_.uniform(0, total_weight_ - 1);
    for (int k = 0; k < 4; ++k) {
      if (r < opt_.op_weights[k]) return kOps[k];
      r -= opt_.op_weights[k];
    }
    return kOps[3];  // unreachable: r < total_weight_
  }

  bool in_results(int64_t v) const {
    return !opt_.results || ((*opt_.results)[0] <= v && v <= (*opt_.results)[1]);
  }

  int literal(Expr& e) {
    if (opt_.literals) {
      e.nodes.push_back({0, rng_.uniform((*opt_.literals)[0], (*opt_.literals)[1]), -1, -1});
      return e.root();
    }
    const int n = int(rng_.uniform(1, digits_));
    const int64_t lo = n == 1 ? 0 : pow10(n - 1);
    e.nodes.push_back({0, rng_.uniform(lo, pow10(n) - 1), -1, -1});
    return e.root();
  }

  Rng& rng_;
  int digits_;
  const ArithOptions& opt_;
  int64_t total_weight_ = 0;
  int64_t redraws_ = 0;
};

}  // namespace

void check_arith_options(const ArithOptions& opt) {
  int64_t total = 0;
  for (int w : opt.op_weights) {
    SSPAN_CHECK(w >= 0, "--op-weights must be >= 0, got {}", w);
    total += w;
  }
  SSPAN_CHECK(total > 0, "--op-weights: at least one operator needs a positive weight");
  SSPAN_CHECK(opt.side_depth_max >= -1, "--side-depth-max must be >= -1 (-1: no limit), got {}",
              opt.side_depth_max);
  SSPAN_CHECK(opt.deep_left >= 0 && opt.deep_left <= 1, "--deep-left must be in [0, 1], got {}", opt.deep_left);
  SSPAN_CHECK(total <= 1000000, "--op-weights: weights add up to {}, above 1000000", total);
  SSPAN_CHECK(opt.layout != ArithLayout::lines || (opt.side_depth_max == 0 && opt.deep_left == 1),
              "--layout lines writes left chains: it needs --side-depth-max 0 --deep-left 1");
  for (const auto& [name, range] : {std::pair{"--literals", opt.literals}, std::pair{"--results", opt.results}}) {
    if (!range) continue;
    const auto [lo, hi] = *range;
    SSPAN_CHECK(lo <= hi, "{} {},{}: the lower bound is above the upper bound", name, lo, hi);
    SSPAN_CHECK(lo > -kNumberLimit && hi < kNumberLimit, "{} {},{}: numbers have at most {} digits",
                name, lo, hi, kMaxDigits);
  }
}

Expr random_expr(uint64_t seed, uint64_t index, const ArithOptions& opt, int& depth, int& digits) {
  Rng rng(seed, index);
  depth = draw_count(rng, opt.depth_mean, opt.depth_sd, 1 << 20);
  digits = draw_count(rng, opt.digits_mean, opt.digits_sd, kMaxDigits);
  Expr e;
  Generator(rng, digits, opt).subtree(e, depth);
  if (opt.literals) digits = expr_max_digits(e);  // no digit count was used: report the longest
  return e;
}

ArithRecord random_arith_record(uint64_t seed, uint64_t index, const ArithOptions& opt) {
  int depth = 0, digits = 0;
  const Expr e = random_expr(seed, index, opt, depth, digits);
  return arith_record(e, depth, digits, opt.layout);
}

ArithRecord arith_record_for(std::string_view expr_text, ArithLayout layout) {
  const Expr e = parse_expr(expr_text);
  SSPAN_CHECK(e.nodes[e.root()].op != 0, "arith expression '{}' has no operation", expr_text);
  return arith_record(e, expr_depth(e), expr_max_digits(e), layout);
}

}  // namespace sspan::data
