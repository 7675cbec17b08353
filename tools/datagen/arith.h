#pragma once
// The `arith` task of the paper (section 4.1, Figure 5): a random expression as the
// prompt and a step-by-step solution trace whose lines name the earlier lines they need.
// The format is documented in docs/datasets.md.
#include <cstdint>
#include <string>
#include <string_view>

#include "expr.h"

namespace sspan::data {

struct ArithOptions {
  // Per record, depth and digit count are drawn from normal(mean, sd), rounded and
  // clipped to >= 1 (digits also to <= kMaxDigits).
  double depth_mean = 5, depth_sd = 2;
  double digits_mean = 5, digits_sd = 2;
};

struct ArithRecord {
  std::string prompt;      // "(42 * 56) + (5 * 32) [0]\n"
  std::string completion;  // the trace, lines joined by '\n', no trailing newline
  std::string answer;      // the final value as decimal text, "2512"
  int depth = 0;           // depth of the expression tree (one operation: 1)
  int digits = 0;          // the drawn digit count (--expr: most digits of a literal)
};

// A random expression for record `index` of the stream `seed` (a pure function of its
// arguments).
Expr random_expr(uint64_t seed, uint64_t index, const ArithOptions& opt, int& depth, int& digits);

// The prompt and solution trace of an expression.
ArithRecord arith_record(const Expr& e, int depth, int digits);

// Record `index` of the stream `seed`.
ArithRecord random_arith_record(uint64_t seed, uint64_t index, const ArithOptions& opt);

// Record for a given expression text (the --expr flag).
ArithRecord arith_record_for(std::string_view expr_text);

// One JSONL line: {"prompt", "completion", "answer", "depth", "digits"}.
std::string to_jsonl(const ArithRecord& r);

}  // namespace sspan::data
