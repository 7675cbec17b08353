#pragma once
// SentencePiece tokenizer with Hugging Face LlamaTokenizer conventions, and a streaming
// detokenizer that keeps leading spaces and only emits complete UTF-8.
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sspan {

class Tokenizer {
 public:
  // A SentencePiece tokenizer.model: a regular file of at most 64 MB.
  static Tokenizer load(const std::filesystem::path& model_file);
  // The same from the file's bytes; `source` names it in errors.
  static Tokenizer from_bytes(std::string_view model_proto, std::string_view source);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Encode as HF LlamaTokenizer does (SentencePiece with its dummy prefix), BOS first
  // when add_bos.
  std::vector<int> encode(std::string_view text, bool add_bos) const;
  // Encode a continuation of earlier text: no dummy-prefix space is added.
  std::vector<int> encode_continuation(std::string_view text) const;
  // Whole decode as HF does (skipping BOS/EOS, dropping the leading dummy-prefix space).
  std::string decode(const std::vector<int>& ids) const;
  // The raw bytes a token stands for: "▁" -> " ", "<0x0A>" -> "\n", control -> "",
  // unknown -> U+FFFD (its surface is not known). Throws for ids outside the vocabulary.
  std::string token_bytes(int id) const;
  // The SentencePiece piece string ("▁world", "<0x0A>").
  std::string piece(int id) const;

  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;
  bool is_control(int id) const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streaming detokenizer for one sequence. push() returns the text that is complete so
// far (valid UTF-8); byte-fallback pieces are held until their character is whole.
// The concatenation of all push() results and finish() equals the decode of the tokens
// as a continuation (leading spaces kept).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(&tok) {}
  std::string push(int id);
  std::string finish();  // flush held bytes (invalid UTF-8 replaced by U+FFFD)

 private:
  const Tokenizer* tok_;
  std::string pending_;
};

}  // namespace sspan
