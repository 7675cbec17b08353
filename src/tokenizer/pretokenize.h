#pragma once
// Pre-tokenizer splits of byte-level BPE tokenizers, written out by hand from their
// regular expressions (no regex engine: these patterns need \p{L}, \p{N} and lookahead).
// Each split returns the pieces as byte ranges of the input, covering it in order.
#include <string_view>
#include <vector>

namespace sspan {

struct ByteRange {
  size_t begin = 0, end = 0;
};

enum class SplitPattern {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Gpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
  //   |\s*[\r\n]+|\s+(?!\S)|\s+
  Llama3,
  // As Llama3 with \p{N} (one digit per piece): Qwen2.
  Qwen2,
  // Every \p{N} character alone, the runs between them whole (HF Digits, individual_digits).
  Digits,
};

// The pattern a tokenizer.json "Split" regex or a GGUF tokenizer.ggml.pre name stands
// for; false when it is none of the above.
bool split_pattern_from_regex(std::string_view regex, SplitPattern* out);

std::vector<ByteRange> split_text(std::string_view text, SplitPattern pattern);

}  // namespace sspan
