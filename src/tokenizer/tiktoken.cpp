// LLaMA 3's tokenizer.model: tiktoken's format, one "base64(token bytes) rank" line per
// token, ranks 0..n-1 in order. The merge rank of two symbols is the rank of the token
// they make; the pre-tokenizer is LLaMA 3's pattern; the 256 special tokens that Meta's
// tokenizer.py appends after the ranks (<|begin_of_text|> = BOS first) are added here.
#include <array>

#include "common/check.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/unicode.h"

namespace sspan {
namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with padding; false for anything else.
bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + size_t(k)];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad) return false;
      v[k] = base64_value(c);
      if (v[k] < 0) return false;
    }
    const uint32_t w = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out.push_back(char(w >> 16));
    if (pad < 2) out.push_back(char((w >> 8) & 0xff));
    if (pad < 1) out.push_back(char(w & 0xff));
  }
  return true;
}

std::vector<std::string> llama3_special_tokens() {
  std::vector<std::string> names = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                                    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                                    "<|python_tag|>"};
  for (int i = 2; names.size() < 256; ++i) names.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
  return names;
}

}  // namespace

BpeSpec read_tiktoken(const std::string& text, const std::string& path) {
  BpeSpec s;
  s.kind = "tiktoken BPE (LLaMA 3 tokenizer.model)";
  s.source = path;
  s.alphabet = BpeSpec::Alphabet::ByteLevel;
  s.ranking = BpeSpec::Ranking::TokenRank;
  s.splits = {SplitPattern::Llama3};
  std::array<std::string, 256> byte_chars;
  for (int b = 0; b < 256; ++b) unicode::append_utf8(byte_to_unicode(static_cast<unsigned char>(b)), byte_chars[size_t(b)]);
  std::string bytes;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    SSPAN_CHECK(sp != std::string_view::npos && base64_decode(line.substr(0, sp), bytes),
                "{}:{}: not a \"base64 rank\" line of a tiktoken file", path, line_no);
    const std::string_view rank_text = line.substr(sp + 1);
    size_t rank = 0;
    SSPAN_CHECK(!rank_text.empty() && rank_text.size() <= 8 &&
                    rank_text.find_first_not_of("0123456789") == std::string_view::npos,
                "{}:{}: rank '{}' is not a number", path, line_no, std::string(rank_text));
    rank = std::stoul(std::string(rank_text));
    SSPAN_CHECK(rank == s.tokens.size(), "{}:{}: rank {} where {} was expected (ranks must be 0, 1, 2, ... in order)",
                path, line_no, rank, s.tokens.size());
    std::string token;
    for (char c : bytes) token += byte_chars[static_cast<unsigned char>(c)];
    s.tokens.push_back(std::move(token));
  }
  SSPAN_CHECK(s.tokens.size() >= 256, "{}: {} ranks; a tiktoken vocabulary holds at least the 256 bytes", path,
              s.tokens.size());
  const int first_special = int(s.tokens.size());
  for (const auto& name : llama3_special_tokens()) {
    s.added.push_back({name, int(s.tokens.size()), true, false, false});
    s.tokens.push_back(name);
  }
  s.bos_id = first_special;      // <|begin_of_text|>
  s.eos_id = first_special + 1;  // <|end_of_text|>
  s.add_bos = true;
  s.ignore_merges = true;
  return s;
}

}  // namespace sspan
