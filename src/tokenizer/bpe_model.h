#pragma once
// BPE tokenizers without SentencePiece: byte-level BPE (GPT-2, LLaMA 3, SmolLM2, Qwen)
// and SentencePiece-style BPE ("▁" for spaces, byte fallback), with merges ranked by a
// merge list (tokenizer.json, GGUF gpt2), by the merged token's rank (tiktoken) or by its
// score (GGUF llama). The readers of each file format fill a BpeSpec; build_bpe checks
// it and makes the model.
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer_model.h"

namespace sspan {

struct BpeSpec {
  enum class Alphabet {
    ByteLevel,  // every byte is a printable character (GPT-2's byte-to-unicode map)
    Metaspace,  // text as it is, spaces as "▁" (U+2581); byte fallback for the rest
  };
  enum class Ranking { MergeList, TokenRank, TokenScore };
  enum class TokenType { Normal, Special, UserDefined, Byte, Unknown };
  struct AddedToken {  // matched in the text before BPE
    std::string content;
    int id = 0;
    bool special = false;  // no text in decode
    bool lstrip = false, rstrip = false;
  };

  std::string kind, source;
  Alphabet alphabet = Alphabet::ByteLevel;
  Ranking ranking = Ranking::MergeList;
  std::vector<std::string> tokens;  // id -> token in the model's alphabet ("" for holes)
  std::vector<TokenType> types;     // id -> type (Normal when empty)
  std::vector<float> scores;        // TokenScore ranking
  std::vector<std::pair<std::string, std::string>> merges;  // MergeList ranking, in rank order
  std::vector<AddedToken> added;
  // Byte-level: splits applied in order; a space put before each piece that lacks one.
  std::vector<SplitPattern> splits;
  bool add_prefix_space = false;
  // Metaspace: "▁" before the text (at its start only, or before every piece between
  // added tokens), and whether the text is split before each "▁".
  enum class Prepend { Never, First, Always } prepend = Prepend::Never;
  bool split_on_space = false;
  bool byte_fallback = false;
  bool ignore_merges = false;  // a pre-token that is itself a token is not split
  bool fuse_unk = false;
  int unk_id = -1;
  int bos_id = -1, eos_id = -1;
  bool add_bos = false;
};

std::unique_ptr<TokenizerModel> build_bpe(BpeSpec spec);

// Readers (each throws sspan::Error naming the file and what is wrong).
// tokenizer.json (+ tokenizer_config.json beside it for add_bos_token).
BpeSpec read_tokenizer_json(const std::string& text, const std::string& path, const std::string& config_text);
// LLaMA 3's tokenizer.model: "base64(token bytes) rank" lines.
BpeSpec read_tiktoken(const std::string& text, const std::string& path);

// The GPT-2 byte-to-unicode map: byte b is written as this code point.
uint32_t byte_to_unicode(unsigned char b);

}  // namespace sspan
