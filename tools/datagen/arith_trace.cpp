// The solution trace of an expression (docs/datasets.md, "arith"). Operations are solved
// one at a time in post-order (the leftmost operation whose operands are both numbers).
// A step's reference list names the task line [0] and the anchors of the results that
// are still live, i.e. not yet consumed by a later step.
#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arith.h"
#include "common/check.h"

namespace sspan::data {
namespace {

std::string num(int64_t v) { return std::to_string(v); }

int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

int digit_count(int64_t v) {
  int d = 1;
  for (v = abs64(v); v >= 10; v /= 10) ++d;
  return d;
}

// Nonzero place-value terms of |v|, largest first: 5060 -> {5000, 60}.
std::vector<int64_t> place_terms(int64_t v) {
  std::vector<int64_t> terms;
  int64_t place = 1;
  for (int64_t m = abs64(v); m > 0; m /= 10, place *= 10)
    if (m % 10 != 0) terms.push_back((m % 10) * place);
  std::reverse(terms.begin(), terms.end());
  return terms;
}

// A number with one nonzero digit (7, 50, 300) multiplies like a single digit.
bool digit_like(int64_t v) { return place_terms(v).size() <= 1; }

std::string join(const std::vector<int64_t>& terms, const char* sep) {
  std::string out;
  for (size_t i = 0; i < terms.size(); ++i) out += (i ? sep : "") + num(terms[i]);
  return out;
}

// Both operands multi-digit: "42 * 56=42 * (50 + 6)=2100 + 252=2352". The operand with
// fewer digits (the second on a tie) is split into its place-value terms (carrying its
// sign), the partial products are listed, then summed left to right.
bool needs_split(char op, int64_t a, int64_t b) {
  if (op == '*') return !digit_like(a) && !digit_like(b);
  if (op == '/') return abs64(a) >= 10 && abs64(b) >= 10 && abs64(a) >= abs64(b);
  return false;
}

std::string split_product(int64_t a, int64_t b) {
  const bool split_a = digit_count(a) < digit_count(b);
  const int64_t kept = split_a ? b : a, split = split_a ? a : b;
  std::vector<int64_t> terms = place_terms(split);
  if (split < 0)
    for (int64_t& t : terms) t = -t;
  std::string out = num(a) + " * " + num(b) + "=" + num(kept) + " * (" + join(terms, " + ") + ")";
  std::vector<int64_t> partial;  // kept * term_i, then folded left to right
  for (int64_t t : terms) partial.push_back(kept * t);
  while (true) {
    out += "=" + join(partial, " + ");
    if (partial.size() == 1) break;
    partial[1] += partial[0];
    partial.erase(partial.begin());
  }
  return out;
}

// Both operands multi-digit, |a| >= |b|: repeated subtraction of |b| * (digit * 10^k),
// greedy from the highest place, on absolute values, then the signed floor quotient:
//   "8914 / 64: 8914 - 64 * 100=8914 - 6400=2514, 2514 - 64 * 30=2514 - 1920=594,
//    594 - 64 * 9=594 - 576=18, so 8914 / 64=100 + 30 + 9=139"
// Signs differ: "so -8914 / 64=-(100 + 30 + 9) - 1=-140" (the "- 1" only when a
// remainder is left), as floor division rounds down.
std::string split_quotient(int64_t a, int64_t b) {
  const int64_t A = abs64(a), B = abs64(b);
  std::string out = num(a) + " / " + num(b) + ":";
  std::vector<int64_t> mults;
  int64_t place = 1;
  while (B * place * 10 <= A) place *= 10;
  int64_t rem = A;
  for (; place >= 1; place /= 10) {
    const int64_t d = rem / (B * place);
    if (d == 0) continue;
    const int64_t m = d * place, next = rem - B * m;
    out += std::string(mults.empty() ? " " : ", ") + num(rem) + " - " + num(B) + " * " + num(m) +
           "=" + num(rem) + " - " + num(B * m) + "=" + num(next);
    mults.push_back(m);
    rem = next;
  }
  int64_t q0 = 0;
  for (int64_t m : mults) q0 += m;
  const bool negative = (a < 0) != (b < 0);
  out += ", so " + num(a) + " / " + num(b) + "=";
  const std::string sum = join(mults, " + ");
  if (!negative) {
    out += sum;
    if (mults.size() > 1) out += "=" + num(q0);
  } else {
    out += mults.size() > 1 ? "-(" + sum + ")" : "-" + sum;
    if (rem != 0) out += " - 1";
    if (mults.size() > 1 || rem != 0) out += "=" + num(rem != 0 ? -(q0 + 1) : -q0);
  }
  return out;
}

std::string operation(char op, int64_t a, int64_t b) {
  return num(a) + " " + op + " " + num(b);
}

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
    for (size_t k = 0; k < refs.size(); ++k) out += (k ? "," : "") + std::to_string(refs[k]);
    return out + "]";
  }

  void step(int i) {
    const ExprNode& n = e_.nodes[i];
    const int64_t a = e_.nodes[n.lhs].value, b = e_.nodes[n.rhs].value;
    const std::string refs = state_refs();
    for (int child : {n.lhs, n.rhs})
      if (anchor_of_[child] >= 0) live_.erase(std::find(live_.begin(), live_.end(), anchor_of_[child]));
    const bool last = i == e_.root();
    if (needs_split(n.op, a, b)) {
      add_line(refs + " " + (n.op == '*' ? split_product(a, b) : split_quotient(a, b)), -1);
      if (last)
        add_line("[-1] " + num(n.value), -1);
      else
        add_result(i, "[-1] So " + operation(n.op, a, b) + "=" + num(n.value));
    } else if (last) {
      add_line(refs + " " + num(n.value), -1);  // the final line folds the last operation in
    } else {
      add_result(i, refs + " " + operation(n.op, a, b) + "=" + num(n.value));
    }
  }

  void add_result(int node, const std::string& text) {
    const int anchor = next_anchor_++;
    anchor_of_[node] = anchor;
    live_.push_back(anchor);  // anchors grow, so live_ stays sorted
    add_line(text + " [" + std::to_string(anchor) + "]", anchor);
  }

  void add_line(std::string text, int anchor) {
    lines_.push_back(std::move(text));
    prev_anchor_ = anchor;
  }

  const Expr& e_;
  std::vector<int> anchor_of_;  // [nodes] anchor of the line holding a node's result
  std::vector<int> live_;       // anchors of results not yet consumed, ascending
  std::vector<std::string> lines_;
  int next_anchor_ = 1;
  int prev_anchor_ = 0;         // anchor of the previous line (-1: none); the task is [0]
};

}  // namespace

ArithRecord arith_record(const Expr& e, int depth, int digits) {
  SSPAN_CHECK(!e.nodes.empty() && e.nodes[e.root()].op != 0, "arith record needs an operation");
  ArithRecord r;
  r.prompt = print_expr(e) + " [0]\n";
  r.completion = TraceWriter(e).write();
  r.answer = num(e.nodes[e.root()].value);
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
