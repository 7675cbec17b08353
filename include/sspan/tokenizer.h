#pragma once
// Tokenizers: SentencePiece tokenizer.model (Hugging Face LlamaTokenizer conventions),
// Hugging Face tokenizer.json (byte-level BPE as LLaMA 3 / SmolLM2 / Qwen use it, and the
// SentencePiece-style BPE with "▁" and byte fallback), LLaMA 3's tiktoken tokenizer.model,
// and the tokenizer inside a GGUF file. And a streaming detokenizer that keeps leading
// spaces and only emits complete UTF-8.
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sspan {

class TokenizerModel;

class Tokenizer {
 public:
  // A tokenizer file, recognised by its content (not its name): a SentencePiece model, a
  // tokenizer.json (with tokenizer_config.json beside it, when present, for
  // add_bos_token and the BOS/EOS tokens), a tiktoken rank file, or a GGUF model. Any
  // other file is an error that lists these kinds.
  static Tokenizer load(const std::filesystem::path& file);
  // The tokenizer of a Hugging Face model directory: tokenizer.model when present, else
  // tokenizer.json; an error naming both when neither exists.
  static Tokenizer for_model_dir(const std::filesystem::path& dir);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Encode a new text as Hugging Face does (SentencePiece: with its dummy prefix), BOS
  // first when add_bos (an error when the tokenizer has no BOS token).
  std::vector<int> encode(std::string_view text, bool add_bos) const;
  // Encode a continuation of earlier text: no dummy-prefix space is added.
  std::vector<int> encode_continuation(std::string_view text) const;
  // Whole decode as HF does (skipping special tokens such as BOS/EOS, dropping the
  // leading dummy-prefix space); invalid UTF-8 becomes U+FFFD.
  std::string decode(const std::vector<int>& ids) const;
  // The raw bytes a token stands for (byte-level tokens: their bytes; "▁" -> " ";
  // "<0x0A>" -> "\n"); "" for control and special tokens; U+FFFD for the unknown token
  // (its surface is not known). Throws for ids outside the vocabulary.
  std::string token_bytes(int id) const;
  // The vocabulary's spelling of a token ("▁world", "<0x0A>", "Ġworld").
  std::string piece(int id) const;

  int vocab_size() const;
  int bos_id() const;  // -1: the tokenizer has none
  int eos_id() const;  // -1: the tokenizer names none
  // Whether the tokenizer puts BOS before a new text (tokenizer_config.json's
  // add_bos_token, a GGUF's tokenizer.ggml.add_bos_token; SentencePiece: when it has one).
  bool add_bos() const;
  bool is_control(int id) const;
  // What kind of tokenizer this is ("SentencePiece", "tokenizer.json byte-level BPE", ...).
  const std::string& kind() const;
  const std::string& source() const;  // the file it came from

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerModel> model);
  std::unique_ptr<TokenizerModel> impl_;
};

// Streaming detokenizer for one sequence. push() returns the text that is complete so
// far (valid UTF-8); partial characters (byte-fallback and byte-level tokens) are held
// until whole. The concatenation of all push() results and finish() equals the decode of
// the tokens as a continuation (leading spaces kept).
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
