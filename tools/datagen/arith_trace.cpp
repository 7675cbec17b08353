// The solution trace of an expression (docs/datasets.md, "arith"). Operations are solved
// one at a time in post-order (the leftmost operation whose operands are both numbers).
// A step's reference list names the task line [0] and the anchors of the results that
// are still live, i.e. not yet consumed by a later step.
#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arith.h"
#include "arith_lines.h"
#include "arith_step.h"
#include "common/check.h"

namespace sspan::data {
namespace {

class TraceWriter {
 public:
  explicit TraceWriter(const Expr& e) : e_(e), anchor_of_(e.nodes.size(), -1) {}

  std::string write() {
    visit(e_.root());
    std::string out;
    for (size_t i = 0; i < lines_.size(); ++i) out += (i ? "\n" : "") + lines_[i];
    return out;
  }

 private:
  void visit(int i) {
    const ExprNode& n = e_.nodes[i];
    if (n.op == 0) return;
    visit(n.lhs);
    visit(n.rhs);
    step(i);
  }

  // The reference list of a step: task line and live results; "[-1]" when that is just
  // the previous line (the first step).
  std::string state_refs() const {
    std::vector<int> refs{0};
    refs.insert(refs.end(), live_.begin(), live_.end());
    if (refs.size() == 1 && prev_anchor_ == refs[0]) return "[-1]";
    std::string out = "[";
    for (size_t k = 0; k < refs.size(); ++k) {
      if (k) out += ',';
      out += std::to_string(refs[k]);
    }
    return out + "]";
  }

  void step(int i) {
    const ExprNode& n = e_.nodes[i];
    const std::string refs = state_refs();
    for (int child : {n.lhs, n.rhs})
      if (anchor_of_[child] >= 0) live_.erase(std::find(live_.begin(), live_.end(), anchor_of_[child]));
    const bool last = i == e_.root();
    const int anchor = last ? -1 : next_anchor_++;
    const auto lines = step_lines(refs, n.op, e_.nodes[n.lhs].value, e_.nodes[n.rhs].value, n.value, last, anchor);
    for (const std::string& line : lines) add_line(line);
    if (anchor >= 0) {  // the step's last line holds its result
      anchor_of_[i] = anchor;
      live_.push_back(anchor);  // anchors grow, so live_ stays sorted
      prev_anchor_ = anchor;
    }
  }

  void add_line(std::string text) {
    lines_.push_back(std::move(text));
    prev_anchor_ = -1;
  }

  const Expr& e_;
  std::vector<int> anchor_of_;  // [nodes] anchor of the line holding a node's result
  std::vector<int> live_;       // anchors of results not yet consumed, ascending
  std::vector<std::string> lines_;
  int next_anchor_ = 1;
  int prev_anchor_ = 0;         // anchor of the previous line (-1: none); the task is [0]
};

}  // namespace

ArithRecord arith_record(const Expr& e, int depth, int digits, ArithLayout layout) {
  SSPAN_CHECK(!e.nodes.empty() && e.nodes[e.root()].op != 0, "arith record needs an operation");
  ArithRecord r;
  if (layout == ArithLayout::lines) {
    write_lines_layout(e, r.prompt, r.completion);
  } else {
    r.prompt = print_expr(e) + " [0]\n";
    r.completion = TraceWriter(e).write();
  }
  r.answer = number_text(e.nodes[e.root()].value);
  r.depth = depth;
  r.digits = digits;
  return r;
}

std::string to_jsonl(const ArithRecord& r) {
  nlohmann::ordered_json j;
  j["prompt"] = r.prompt;
  j["completion"] = r.completion;
  j["answer"] = r.answer;
  j["depth"] = r.depth;
  j["digits"] = r.digits;
  return j.dump();
}

}  // namespace sspan::data
