#pragma once
// The `arith` task of the paper (section 4.1, Figure 5): a random expression as the
// prompt and a step-by-step solution trace whose lines name the earlier lines they need.
// The format is documented in docs/datasets.md.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "expr.h"

namespace sspan::data {

// How a record lays the task out (docs/datasets.md, "Layouts").
enum class ArithLayout {
  expression,  // the paper's: the expression on one prompt line [0]
  lines,       // a left chain, one operation per prompt line [k]; step k names line k
};

struct ArithOptions {
  // Per record, depth and digit count are drawn from normal(mean, sd), rounded and
  // clipped to >= 1 (digits also to <= kMaxDigits).
  double depth_mean = 5, depth_sd = 2;
  double digits_mean = 5, digits_sd = 2;
  // Relative weights of the operators + - * / (in that order) when an operation is drawn;
  // non-negative, at least one positive. Equal weights draw exactly as the paper setting.
  std::array<int, 4> op_weights{1, 1, 1, 1};
  // When set, every literal is uniform in [first, second] and the digits draw is unused.
  std::optional<std::array<int64_t, 2>> literals;
  // When set, every operation result (intermediate and final) lies in [first, second]:
  // an operation whose result falls outside is redrawn like one that breaks the cap.
  std::optional<std::array<int64_t, 2>> results;
  // Tree shape. At each operation one operand carries the remaining depth; the other's
  // depth is uniform in [0, min(depth - 1, side_depth_max)] (-1: no limit; 0: a chain of
  // operations, each with a literal on its other side). The deep operand is the left one
  // with probability deep_left (the rest of the stream does not depend on it at 0.5).
  int side_depth_max = -1;
  double deep_left = 0.5;
  // `lines` needs left chains: side_depth_max 0 and deep_left 1.
  ArithLayout layout = ArithLayout::expression;
};

// Throws sspan::Error naming the option when `opt` cannot generate (bad ranges, weights).
void check_arith_options(const ArithOptions& opt);

struct ArithRecord {
  std::string prompt;      // "(42 * 56) + (5 * 32) [0]\n" (`lines`: "7 [0]\n+ 5 [1]\n...")
  std::string completion;  // the trace, lines joined by '\n', no trailing newline
  std::string answer;      // the final value as decimal text, "2512"
  int depth = 0;           // depth of the expression tree (one operation: 1)
  int digits = 0;          // the drawn digit count (--expr: most digits of a literal)
};

// A random expression for record `index` of the stream `seed` (a pure function of its
// arguments).
Expr random_expr(uint64_t seed, uint64_t index, const ArithOptions& opt, int& depth, int& digits);

// The prompt and solution trace of an expression (`lines`: a left chain, else an error
// naming the expression).
ArithRecord arith_record(const Expr& e, int depth, int digits, ArithLayout layout = ArithLayout::expression);

// Record `index` of the stream `seed`.
ArithRecord random_arith_record(uint64_t seed, uint64_t index, const ArithOptions& opt);

// Record for a given expression text (the --expr flag).
ArithRecord arith_record_for(std::string_view expr_text, ArithLayout layout = ArithLayout::expression);

// One JSONL line: {"prompt", "completion", "answer", "depth", "digits"}.
std::string to_jsonl(const ArithRecord& r);

}  // namespace sspan::data
