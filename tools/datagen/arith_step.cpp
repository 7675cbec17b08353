// The text of one arith solution step (docs/datasets.md, "The trace").
#include "arith_step.h"

#include <algorithm>

namespace sspan::data {
namespace {

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
  for (size_t i = 0; i < terms.size(); ++i) out += (i ? sep : "") + number_text(terms[i]);
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
  std::string out = number_text(a) + " * " + number_text(b) + "=" + number_text(kept) + " * (" + join(terms, " + ") + ")";
  std::vector<int64_t> partial;  // kept * term_i, then folded left to right
  for (int64_t t : terms) partial.push_back(kept * t);
  while (true) {
    out.append("=").append(join(partial, " + "));
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
  std::string out = number_text(a) + " / " + number_text(b) + ":";
  std::vector<int64_t> mults;
  int64_t place = 1;
  while (B * place * 10 <= A) place *= 10;
  int64_t rem = A;
  for (; place >= 1; place /= 10) {
    const int64_t d = rem / (B * place);
    if (d == 0) continue;
    const int64_t m = d * place, next = rem - B * m;
    out += std::string(mults.empty() ? " " : ", ") + number_text(rem) + " - " + number_text(B) + " * " + number_text(m) +
           "=" + number_text(rem) + " - " + number_text(B * m) + "=" + number_text(next);
    mults.push_back(m);
    rem = next;
  }
  int64_t q0 = 0;
  for (int64_t m : mults) q0 += m;
  const bool negative = (a < 0) != (b < 0);
  out += ", so " + number_text(a) + " / " + number_text(b) + "=";
  const std::string sum = join(mults, " + ");
  if (!negative) {
    out += sum;
    if (mults.size() > 1) out.append("=").append(number_text(q0));
  } else {
    out += mults.size() > 1 ? "-(" + sum + ")" : "-" + sum;
    if (rem != 0) out += " - 1";
    if (mults.size() > 1 || rem != 0) out.append("=").append(number_text(rem != 0 ? -(q0 + 1) : -q0));
  }
  return out;
}

std::string operation(char op, int64_t a, int64_t b) {
  return number_text(a) + " " + op + " " + number_text(b);
}

}  // namespace

std::string number_text(int64_t v) { return std::to_string(v); }

std::vector<std::string> step_lines(const std::string& refs, char op, int64_t a, int64_t b, int64_t v,
                                    bool last, int anchor) {
  const std::string tail = anchor >= 0 ? " [" + std::to_string(anchor) + "]" : "";
  const std::string value = number_text(v);
  if (needs_split(op, a, b)) {
    const std::string split = op == '*' ? split_product(a, b) : split_quotient(a, b);
    return {refs + " " + split, last ? "[-1] " + value : "[-1] So " + operation(op, a, b) + "=" + value + tail};
  }
  if (last) return {refs + " " + value};  // the final line folds the last operation in
  return {refs + " " + operation(op, a, b) + "=" + value + tail};
}

}  // namespace sspan::data
