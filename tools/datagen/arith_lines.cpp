// The `lines` layout of the arith task (docs/datasets.md, "Layouts"). A left chain
// (((a op1 b1) op2 b2) ... opn bn) is written one operation per prompt line, each line
// anchored by its number and the last one closed by " =":
//   7 [0]
//   + 5 [1]
//   * 3 [2]
//   - 9 = [3]
// Step k names the prompt line of its operation and the line before it (which holds the
// running value), so each step attends to a few short lines however long the chain:
//   [0,1] 7 + 5=12
//   [-1,2] 12 * 3=36
//   [-1,3] 36 - 9=27
//   [-1] 27
// The " =" lets the last step see, within its span, that it is the last. The last step
// is written out like every other and its value copied onto a line of its own: folding
// the operation into the answer (as the expression layout does) was where small models
// failed most on long chains, the one step unlike the rest.
#include "arith_lines.h"

#include <algorithm>
#include <vector>

#include "arith_step.h"
#include "common/check.h"

namespace sspan::data {
namespace {

struct ChainStep {
  char op;
  int64_t literal;  // the right operand
  int64_t value;    // the running value after this step
};

// The steps of a left chain, first to last, and its first literal; false when `e` is not
// a left chain (some operation has an operation as its right operand).
bool left_chain(const Expr& e, int64_t& first, std::vector<ChainStep>& steps) {
  int node = e.root();
  while (e.nodes[node].op != 0) {
    const ExprNode& n = e.nodes[node];
    if (e.nodes[n.rhs].op != 0) return false;
    steps.push_back({n.op, e.nodes[n.rhs].value, n.value});
    node = n.lhs;
  }
  first = e.nodes[node].value;
  std::reverse(steps.begin(), steps.end());
  return true;
}

}  // namespace

void write_lines_layout(const Expr& e, std::string& prompt, std::string& completion) {
  int64_t first = 0;
  std::vector<ChainStep> steps;
  SSPAN_CHECK(left_chain(e, first, steps) && !steps.empty(),
              "arith expression '{}' is not a left chain (((a op b) op c) ...): the lines layout "
              "writes one operation per line",
              print_expr(e));
  const size_t n = steps.size();
  prompt = number_text(first) + " [0]\n";
  for (size_t k = 1; k <= n; ++k) {
    const ChainStep& s = steps[k - 1];
    prompt += std::string(1, s.op) + " " + number_text(s.literal) + (k == n ? " =" : "") + " [" +
              std::to_string(k) + "]\n";
  }
  completion.clear();
  int64_t running = first;
  for (size_t k = 1; k <= n; ++k) {
    const ChainStep& s = steps[k - 1];
    const std::string refs = k == 1 ? "[0,1]" : "[-1," + std::to_string(k) + "]";
    for (const std::string& line : step_lines(refs, s.op, running, s.literal, s.value, false, -1))
      completion += (completion.empty() ? "" : "\n") + line;
    running = s.value;
  }
  completion += "\n[-1] " + number_text(running);
}

}  // namespace sspan::data
