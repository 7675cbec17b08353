// BPE encoding and decoding for byte-level and SentencePiece-style ("▁") vocabularies.
// Encoding: added tokens are cut out of the text first (leftmost, longest), the rest is
// pre-tokenized into pieces, and each piece is merged pair by pair, best rank first,
// leftmost first among equals, until no adjacent pair merges.
#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <array>
#include <queue>
#include <unordered_map>

#include "common/check.h"
#include "tokenizer/unicode.h"

namespace sspan {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // "▁"

std::array<uint32_t, 256> make_byte_map() {
  std::array<uint32_t, 256> map{};
  uint32_t extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[size_t(b)] = printable ? uint32_t(b) : 256 + extra++;
  }
  return map;
}

// "<0xAB>" -> 0xAB, or -1.
int byte_token_value(std::string_view t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t.back() != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

class BpeModel final : public TokenizerModel {
 public:
  explicit BpeModel(BpeSpec spec) : s_(std::move(spec)) {
    const size_t V = s_.tokens.size();
    SSPAN_CHECK(V > 0, "{}: the vocabulary is empty", s_.source);
    SSPAN_CHECK(V <= size_t(1) << 24, "{}: {} tokens is more than any tokenizer this engine reads", s_.source, V);
    if (s_.types.empty()) s_.types.assign(V, BpeSpec::TokenType::Normal);
    SSPAN_CHECK(s_.types.size() == V, "{}: {} token types for {} tokens", s_.source, s_.types.size(), V);
    kind = s_.kind;
    source = s_.source;
    vocab_size = int(V);
    auto check_id = [&](int id, const char* what) {
      SSPAN_CHECK(id >= -1 && id < int(V), "{}: {} id {} is outside the vocabulary of {}", s_.source, what, id, V);
    };
    check_id(s_.bos_id, "BOS");
    check_id(s_.eos_id, "EOS");
    check_id(s_.unk_id, "unknown-token");
    bos_id = s_.bos_id;
    eos_id = s_.eos_id;
    add_bos = s_.add_bos && s_.bos_id >= 0;

    const auto byte_map = make_byte_map();
    for (int b = 0; b < 256; ++b) {
      unicode::append_utf8(byte_map[size_t(b)], byte_chars_[size_t(b)]);
      char_to_byte_[byte_map[size_t(b)]] = static_cast<unsigned char>(b);
    }
    byte_token_.fill(-1);
    for (auto& a : s_.added) {
      check_id(a.id, "added token");
      SSPAN_CHECK(a.id >= 0 && !a.content.empty(), "{}: an added token has an empty content or no id", s_.source);
      s_.tokens[size_t(a.id)] = a.content;
      s_.types[size_t(a.id)] = a.special ? BpeSpec::TokenType::Special : BpeSpec::TokenType::UserDefined;
    }
    ids_.reserve(V);
    for (size_t id = 0; id < V; ++id) {
      const std::string& t = s_.tokens[id];
      if (s_.types[id] == BpeSpec::TokenType::Byte || (s_.byte_fallback && byte_token_value(t) >= 0)) {
        const int b = byte_token_value(t);
        SSPAN_CHECK(b >= 0, "{}: byte token {} is not of the form <0xAB>", s_.source, id);
        s_.types[id] = BpeSpec::TokenType::Byte;
        if (byte_token_[size_t(b)] < 0) byte_token_[size_t(b)] = int(id);
      }
      if (!t.empty() && s_.types[id] != BpeSpec::TokenType::Special) ids_.emplace(t, int(id));  // first id wins
    }
    for (size_t r = 0; r < s_.merges.size(); ++r)
      merge_rank_.emplace(s_.merges[r].first + ' ' + s_.merges[r].second, int(r));
    if (s_.ranking == BpeSpec::Ranking::TokenScore)
      SSPAN_CHECK(s_.scores.size() == V, "{}: {} scores for {} tokens", s_.source, s_.scores.size(), V);
    std::sort(s_.added.begin(), s_.added.end(),
              [](const auto& a, const auto& b) { return a.content.size() > b.content.size(); });
    bytes_.resize(V);
    for (size_t id = 0; id < V; ++id) bytes_[id] = surface(int(id));
  }

  std::vector<int> encode(std::string_view text, bool continuation) const override {
    std::vector<int> out;
    size_t seg_begin = 0;  // start of the text not yet encoded
    size_t i = 0;
    while (i <= text.size()) {
      const BpeSpec::AddedToken* hit = i < text.size() ? added_at(text, i) : nullptr;
      if (i < text.size() && !hit) {
        ++i;
        continue;
      }
      // Text before the added token (whitespace it strips on its left excluded).
      size_t seg_end = i;
      if (hit && hit->lstrip)
        while (seg_end > seg_begin && unicode::is_whitespace(uint8_t(text[seg_end - 1]))) --seg_end;
      if (seg_end > seg_begin) encode_segment(text.substr(seg_begin, seg_end - seg_begin), seg_begin == 0 && !continuation, out);
      if (!hit) break;
      out.push_back(hit->id);
      i += hit->content.size();
      if (hit->rstrip)
        while (i < text.size() && unicode::is_whitespace(uint8_t(text[i]))) ++i;
      seg_begin = i;
    }
    return out;
  }

  std::string token_bytes(int id) const override { return bytes_[size_t(checked(id))]; }
  std::string piece(int id) const override { return s_.tokens[size_t(checked(id))]; }
  bool is_control(int id) const override {
    return id >= 0 && id < vocab_size && s_.types[size_t(id)] == BpeSpec::TokenType::Special;
  }
  bool strips_leading_space() const override {
    return s_.alphabet == BpeSpec::Alphabet::Metaspace && s_.prepend != BpeSpec::Prepend::Never;
  }

 private:
  int checked(int id) const {
    SSPAN_CHECK(id >= 0 && id < vocab_size, "tokenizer {}: token id {} outside vocabulary [0, {})", s_.source, id,
                vocab_size);
    return id;
  }

  // The bytes token `id` stands for.
  std::string surface(int id) const {
    const std::string& t = s_.tokens[size_t(id)];
    switch (s_.types[size_t(id)]) {
      case BpeSpec::TokenType::Special: return {};
      case BpeSpec::TokenType::Unknown: return std::string(unicode::kReplacement);
      case BpeSpec::TokenType::Byte: return std::string(1, char(byte_token_value(t)));
      case BpeSpec::TokenType::UserDefined: return t;
      case BpeSpec::TokenType::Normal: break;
    }
    if (id == s_.unk_id) return std::string(unicode::kReplacement);
    std::string out;
    if (s_.alphabet == BpeSpec::Alphabet::Metaspace) {
      for (size_t i = 0; i < t.size();) {
        if (std::string_view(t).substr(i, kMetaspace.size()) == kMetaspace) {
          out.push_back(' ');
          i += kMetaspace.size();
        } else {
          out.push_back(t[i++]);
        }
      }
      return out;
    }
    // Byte level: every character maps back to one byte; a token that is not written in
    // the byte alphabet (an added word) stands for itself.
    for (const auto& ch : unicode::decode_utf8(t)) {
      const auto it = char_to_byte_.find(ch.cp);
      if (it == char_to_byte_.end()) return t;
      out.push_back(char(it->second));
    }
    return out;
  }

  // The longest added token that starts at text[i], or nullptr.
  const BpeSpec::AddedToken* added_at(std::string_view text, size_t i) const {
    for (const auto& a : s_.added)  // longest first
      if (text.substr(i, a.content.size()) == a.content) return &a;
    return nullptr;
  }

  void encode_segment(std::string_view seg, bool at_start, std::vector<int>& out) const {
    if (s_.alphabet == BpeSpec::Alphabet::ByteLevel) {
      std::vector<std::string> pieces{std::string(seg)};
      for (size_t stage = 0; stage < s_.splits.size(); ++stage) {
        std::vector<std::string> next;
        for (const auto& p : pieces)
          for (const auto& r : split_text(p, s_.splits[stage])) next.push_back(p.substr(r.begin, r.end - r.begin));
        pieces = std::move(next);
      }
      std::string mapped;
      for (const auto& p : pieces) {
        mapped.clear();
        if (s_.add_prefix_space && at_start && &p == &pieces.front() && !p.starts_with(' ')) mapped += byte_chars_[' '];
        for (char c : p) mapped += byte_chars_[static_cast<unsigned char>(c)];
        merge_word(mapped, out);
      }
      return;
    }
    std::string norm;
    const bool prepend = s_.prepend == BpeSpec::Prepend::Always || (s_.prepend == BpeSpec::Prepend::First && at_start);
    if (prepend) norm += kMetaspace;
    for (char c : seg) c == ' ' ? norm.append(kMetaspace) : norm.append(1, c);
    if (!s_.split_on_space) {
      merge_word(norm, out);
      return;
    }
    size_t begin = 0;
    for (size_t i = kMetaspace.size(); i <= norm.size(); ++i) {
      if (i == norm.size() || std::string_view(norm).substr(i, kMetaspace.size()) == kMetaspace) {
        merge_word(std::string_view(norm).substr(begin, i - begin), out);
        begin = i;
      }
    }
  }

  // Priority of merging adjacent symbols a and b: lower is better; none when they do not merge.
  bool pair_rank(std::string_view a, std::string_view b, std::string& key, double* rank) const {
    key.assign(a);
    if (s_.ranking == BpeSpec::Ranking::MergeList) {
      key += ' ';
      key += b;
      const auto it = merge_rank_.find(key);
      if (it == merge_rank_.end()) return false;
      *rank = it->second;
      return true;
    }
    key += b;
    const auto it = ids_.find(key);
    if (it == ids_.end()) return false;
    *rank = s_.ranking == BpeSpec::Ranking::TokenRank ? double(it->second) : -double(s_.scores[size_t(it->second)]);
    return true;
  }

  void merge_word(std::string_view word, std::vector<int>& out) const {
    if (word.empty()) return;
    if (s_.ignore_merges) {
      const auto it = ids_.find(std::string(word));
      if (it != ids_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    struct Sym {
      uint32_t begin, len;
      int prev, next;
    };
    std::vector<Sym> sym;
    for (size_t i = 0; i < word.size();) {
      const size_t n = std::min(size_t(std::max(1, unicode::sequence_length(uint8_t(word[i])))), word.size() - i);
      sym.push_back({uint32_t(i), uint32_t(n), int(sym.size()) - 1, int(sym.size()) + 1});
      i += n;
    }
    sym.back().next = -1;
    struct Cand {
      double rank;
      uint32_t pos;
      int left, right;
      uint32_t len;
      bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }  // min-heap
    };
    std::priority_queue<Cand> queue;
    std::string key;
    auto text = [&](int s) { return word.substr(sym[size_t(s)].begin, sym[size_t(s)].len); };
    auto consider = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      double rank;
      if (pair_rank(text(l), text(r), key, &rank))
        queue.push({rank, sym[size_t(l)].begin, l, r, sym[size_t(l)].len + sym[size_t(r)].len});
    };
    for (size_t s = 0; s + 1 < sym.size(); ++s) consider(int(s), int(s + 1));
    while (!queue.empty()) {
      const Cand c = queue.top();
      queue.pop();
      Sym& l = sym[size_t(c.left)];
      Sym& r = sym[size_t(c.right)];
      if (l.len == 0 || r.len == 0 || l.next != c.right || l.len + r.len != c.len) continue;  // stale
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = c.left;
      consider(l.prev, c.left);
      consider(c.left, l.next);
    }
    bool last_unk = false;
    for (int s = 0; s >= 0; s = sym[size_t(s)].next) {
      const std::string_view t = text(s);
      if (const auto it = ids_.find(std::string(t)); it != ids_.end()) {
        out.push_back(it->second);
        last_unk = false;
        continue;
      }
      if (s_.byte_fallback) {
        bool all = true;
        for (char c : t) all = all && byte_token_[static_cast<unsigned char>(c)] >= 0;
        if (all) {
          for (char c : t) out.push_back(byte_token_[static_cast<unsigned char>(c)]);
          last_unk = false;
          continue;
        }
      }
      SSPAN_CHECK(s_.unk_id >= 0, "tokenizer {}: the text piece '{}' has no token and the vocabulary no unknown token",
                  s_.source, std::string(t));
      if (!(s_.fuse_unk && last_unk)) out.push_back(s_.unk_id);
      last_unk = true;
    }
  }

  BpeSpec s_;
  std::unordered_map<std::string, int> ids_;
  std::unordered_map<std::string, int> merge_rank_;
  std::array<std::string, 256> byte_chars_;
  std::unordered_map<uint32_t, unsigned char> char_to_byte_;
  std::array<int, 256> byte_token_{};
  std::vector<std::string> bytes_;
};

}  // namespace

uint32_t byte_to_unicode(unsigned char b) {
  static const auto map = make_byte_map();
  return map[b];
}

std::unique_ptr<TokenizerModel> build_bpe(BpeSpec spec) { return std::make_unique<BpeModel>(std::move(spec)); }

}  // namespace sspan
