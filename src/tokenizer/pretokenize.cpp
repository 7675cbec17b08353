// The GPT-2 and LLaMA-3 pre-tokenizer patterns as hand-written matchers. Each matcher
// tries the pattern's alternatives in order at a position, as a backtracking regex
// engine would, and returns the length (in characters) of the first that matches.
#include "tokenizer/pretokenize.h"

#include "tokenizer/unicode.h"

namespace sspan {
namespace {

using unicode::Char;

class Matcher {
 public:
  explicit Matcher(const std::vector<Char>& chars) : c_(chars) {}

  size_t size() const { return c_.size(); }
  bool letter(size_t i) const { return i < c_.size() && unicode::is_letter(c_[i].cp); }
  bool number(size_t i) const { return i < c_.size() && unicode::is_number(c_[i].cp); }
  bool space(size_t i) const { return i < c_.size() && unicode::is_whitespace(c_[i].cp); }
  // [^\s\p{L}\p{N}]
  bool other(size_t i) const { return i < c_.size() && !letter(i) && !number(i) && !space(i); }
  bool newline(size_t i) const { return i < c_.size() && (c_[i].cp == '\r' || c_[i].cp == '\n'); }
  bool is(size_t i, char ch) const { return i < c_.size() && c_[i].cp == uint32_t(ch); }
  bool is_ci(size_t i, char lower) const {
    return i < c_.size() && (c_[i].cp == uint32_t(lower) || c_[i].cp == uint32_t(lower - 'a' + 'A'));
  }

  // 's|'t|'re|'ve|'m|'ll|'d, case-insensitively when `ci`.
  size_t contraction(size_t i, bool ci) const {
    if (!is(i, '\'')) return 0;
    auto at = [&](size_t k, char ch) { return ci ? is_ci(k, ch) : is(k, ch); };
    if (at(i + 1, 's') || at(i + 1, 't') || at(i + 1, 'm') || at(i + 1, 'd')) return 2;
    if ((at(i + 1, 'r') && at(i + 2, 'e')) || (at(i + 1, 'v') && at(i + 2, 'e')) ||
        (at(i + 1, 'l') && at(i + 2, 'l')))
      return 3;
    return 0;
  }
  template <class Pred>
  size_t run(size_t i, Pred pred, size_t max = size_t(-1)) const {
    size_t j = i;
    while (j < c_.size() && j - i < max && (this->*pred)(j)) ++j;
    return j - i;
  }
  // ` ?X+` for a class X.
  template <class Pred>
  size_t space_then_run(size_t i, Pred pred) const {
    if (is(i, ' ') && (this->*pred)(i + 1)) return 1 + run(i + 1, pred);
    return run(i, pred);
  }
  // \s+(?!\S)|\s+ : a whitespace run, leaving its last character to the word after it.
  size_t trailing_space(size_t i) const {
    const size_t n = run(i, &Matcher::space);
    if (n == 0) return 0;
    if (i + n == c_.size() || n == 1) return n;
    return n - 1;
  }

  size_t gpt2(size_t i) const {
    if (size_t n = contraction(i, false)) return n;
    if (size_t n = space_then_run(i, &Matcher::letter); n && (letter(i) || letter(i + 1))) return n;
    if (size_t n = space_then_run(i, &Matcher::number); n && (number(i) || number(i + 1))) return n;
    if (size_t n = space_then_run(i, &Matcher::other); n && (other(i) || other(i + 1))) return n;
    return trailing_space(i);
  }

  size_t llama3(size_t i, size_t max_digits) const {
    if (size_t n = contraction(i, true)) return n;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (i < c_.size() && !newline(i) && !letter(i) && !number(i) && letter(i + 1)) return 1 + run(i + 1, &Matcher::letter);
    if (size_t n = run(i, &Matcher::letter)) return n;
    if (size_t n = run(i, &Matcher::number, max_digits)) return n;
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    const size_t lead = is(i, ' ') && other(i + 1) ? 1 : 0;
    if (size_t n = run(i + lead, &Matcher::other)) return lead + n + run(i + lead + n, &Matcher::newline);
    // \s*[\r\n]+ : the whitespace run up to and including its last newline.
    const size_t ws = run(i, &Matcher::space);
    for (size_t k = ws; k > 0; --k)
      if (newline(i + k - 1)) return k;
    return trailing_space(i);
  }

 private:
  const std::vector<Char>& c_;
};

}  // namespace

bool split_pattern_from_regex(std::string_view regex, SplitPattern* out) {
  static constexpr std::string_view kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  static constexpr std::string_view kLlama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static constexpr std::string_view kQwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (regex == kGpt2) *out = SplitPattern::Gpt2;
  else if (regex == kLlama3) *out = SplitPattern::Llama3;
  else if (regex == kQwen2) *out = SplitPattern::Qwen2;
  else return false;
  return true;
}

std::vector<ByteRange> split_text(std::string_view text, SplitPattern pattern) {
  const std::vector<Char> chars = unicode::decode_utf8(text);
  const Matcher m(chars);
  std::vector<ByteRange> out;
  auto byte_at = [&](size_t ci) { return ci < chars.size() ? size_t(chars[ci].offset) : text.size(); };
  if (pattern == SplitPattern::Digits) {
    size_t start = 0;
    for (size_t i = 0; i < chars.size(); ++i) {
      if (!m.number(i)) continue;
      if (start < i) out.push_back({byte_at(start), byte_at(i)});
      out.push_back({byte_at(i), byte_at(i + 1)});
      start = i + 1;
    }
    if (start < chars.size()) out.push_back({byte_at(start), text.size()});
    return out;
  }
  for (size_t i = 0; i < chars.size();) {
    size_t n = pattern == SplitPattern::Gpt2     ? m.gpt2(i)
               : pattern == SplitPattern::Llama3 ? m.llama3(i, 3)
                                                 : m.llama3(i, 1);
    if (n == 0) n = 1;  // unreachable for these patterns (every character matches one branch)
    out.push_back({byte_at(i), byte_at(i + n)});
    i += n;
  }
  return out;
}

}  // namespace sspan
