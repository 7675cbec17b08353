#pragma once
// What every tokenizer implementation provides behind sspan::Tokenizer (the public
// facade in include/sspan/tokenizer.h): SentencePiece (sentencepiece_model.cpp) and BPE
// (bpe_model.cpp: Hugging Face tokenizer.json, LLaMA 3's tiktoken file, GGUF metadata).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sspan {

class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;
  // Ids of `text` without BOS; `continuation`: the text follows earlier text, so no
  // dummy-prefix space is added.
  virtual std::vector<int> encode(std::string_view text, bool continuation) const = 0;
  // The whole decode of `ids` as Hugging Face does it (special tokens skipped).
  virtual std::string decode(const std::vector<int>& ids) const;
  // Raw bytes of a token (may be part of a UTF-8 character); "" for special tokens.
  virtual std::string token_bytes(int id) const = 0;
  virtual std::string piece(int id) const = 0;  // the vocabulary's own spelling
  virtual bool is_control(int id) const = 0;    // special / control: no text
  // Whether decode() drops one leading space (SentencePiece's dummy prefix).
  virtual bool strips_leading_space() const { return false; }

  int vocab_size = 0;
  int bos_id = -1, eos_id = -1;
  bool add_bos = true;  // what the tokenizer does when asked to encode a new text
  std::string kind;     // e.g. "SentencePiece", "tokenizer.json byte-level BPE"
  std::string source;   // the file, for messages
};

// A serialized SentencePiece ModelProto (a tokenizer.model's bytes); `source` names it in
// errors.
std::unique_ptr<TokenizerModel> load_sentencepiece(std::string_view model_proto, const std::string& source);

}  // namespace sspan
