// The Tokenizer facade: which implementation a file needs (by its content), and the
// checks every implementation shares.
#include "sspan/tokenizer.h"

#include <fstream>
#include <sstream>
#include <system_error>

#include "common/check.h"
#include "io/gguf.h"
#include "io/untrusted_files.h"
#include "tokenizer/bpe_model.h"

namespace sspan {

BpeSpec read_gguf_vocab(const GgufFile& f);  // gguf_vocab.cpp

namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxTokenizerBytes = size_t(256) << 20;  // the largest tokenizer.json known is ~20 MB
constexpr const char* kSupportedKinds =
    "a SentencePiece tokenizer.model, a Hugging Face tokenizer.json, LLaMA 3's tiktoken tokenizer.model or a GGUF "
    "model file";

bool looks_like_json(std::string_view text) {
  const size_t i = text.find_first_not_of(" \t\r\n");
  return i != std::string_view::npos && text[i] == '{';
}

// tiktoken: "base64 rank" lines.
bool looks_like_tiktoken(std::string_view text) {
  const std::string_view line = text.substr(0, text.find('\n'));
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0 || sp + 1 == line.size()) return false;
  const auto b64 = line.substr(0, sp), rank = line.substr(sp + 1);
  return b64.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
             std::string_view::npos &&
         rank.find_first_not_of("0123456789") == std::string_view::npos;
}

// A serialized SentencePiece ModelProto starts with field 1 (pieces), length-delimited.
bool looks_like_sentencepiece(std::string_view text) { return !text.empty() && text[0] == '\x0a'; }

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<TokenizerModel> model) : impl_(std::move(model)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const fs::path& file) {
  const std::string path = file.string();
  std::error_code ec;
  SSPAN_CHECK(fs::is_regular_file(file, ec), "tokenizer {} does not exist or is not a file", path);
  char head[4] = {};
  {
    std::ifstream in(file, std::ios::binary);
    SSPAN_CHECK(in, "tokenizer {}: cannot open", path);
    in.read(head, sizeof head);
  }
  if (looks_like_gguf(std::as_bytes(std::span(head)))) return Tokenizer(build_bpe(read_gguf_vocab(*GgufFile::open(file))));
  const std::string text = io::read_regular_file(file, kMaxTokenizerBytes, "tokenizer");
  if (looks_like_json(text)) {
    const fs::path config = file.parent_path() / "tokenizer_config.json";
    const std::string config_text =
        fs::is_regular_file(config, ec) ? io::read_regular_file(config, size_t(16) << 20, "tokenizer config") : "";
    return Tokenizer(build_bpe(read_tokenizer_json(text, path, config_text)));
  }
  if (looks_like_tiktoken(text)) return Tokenizer(build_bpe(read_tiktoken(text, path)));
  SSPAN_CHECK(looks_like_sentencepiece(text), "tokenizer {} is not a tokenizer file this engine reads; supported: {}",
              path, kSupportedKinds);
  try {
    return Tokenizer(load_sentencepiece(text, path));
  } catch (const Error& e) {
    SSPAN_FAIL("{} (supported tokenizers: {})", e.what(), kSupportedKinds);
  }
}

Tokenizer Tokenizer::for_model_dir(const fs::path& dir) {
  std::error_code ec;
  for (const char* name : {"tokenizer.model", "tokenizer.json"})
    if (fs::exists(dir / name, ec)) {
      io::check_inside_model_dir(dir, dir / name);  // the link rule of every file of a model directory
      return load(dir / name);
    }
  SSPAN_FAIL("{}: no tokenizer.model or tokenizer.json (give one with --tokenizer)", dir.string());
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  if (add_bos) {
    SSPAN_CHECK(bos_id() >= 0, "tokenizer {} has no BOS token", source());
    ids.push_back(bos_id());
  }
  const auto body = impl_->encode(text, /*continuation=*/false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<int> Tokenizer::encode_continuation(std::string_view text) const {
  if (text.empty()) return {};
  return impl_->encode(text, /*continuation=*/true);
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  for (int id : ids)
    SSPAN_CHECK(id >= 0 && id < vocab_size(), "tokenizer {}: token id {} outside vocabulary [0, {})", source(), id,
                vocab_size());
  return impl_->decode(ids);
}

std::string Tokenizer::token_bytes(int id) const {
  SSPAN_CHECK(id >= 0 && id < vocab_size(), "tokenizer {}: token id {} outside vocabulary [0, {})", source(), id,
              vocab_size());
  return impl_->token_bytes(id);
}

std::string Tokenizer::piece(int id) const {
  SSPAN_CHECK(id >= 0 && id < vocab_size(), "tokenizer {}: token id {} outside vocabulary [0, {})", source(), id,
              vocab_size());
  return impl_->piece(id);
}

int Tokenizer::vocab_size() const { return impl_->vocab_size; }
int Tokenizer::bos_id() const { return impl_->bos_id; }
int Tokenizer::eos_id() const { return impl_->eos_id; }
bool Tokenizer::add_bos() const { return impl_->add_bos && impl_->bos_id >= 0; }
bool Tokenizer::is_control(int id) const { return id >= 0 && id < vocab_size() && impl_->is_control(id); }
const std::string& Tokenizer::kind() const { return impl_->kind; }
const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace sspan
