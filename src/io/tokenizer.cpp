// Tokenizer over SentencePiece with Hugging Face LlamaTokenizer (legacy) conventions.
#include "sspan/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <system_error>

#include "common/check.h"
#include "io/model_files.h"

namespace sspan {

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::filesystem::path file;
  // Ids of "\n" encoded on its own: the sentinel that encode_continuation puts in front
  // of the text so the model's dummy-prefix space lands on the sentinel, not the text.
  // A newline is a byte piece that merges with nothing, so the text after it is
  // tokenized exactly as it would be mid-sequence.
  std::vector<int> newline_sentinel;
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

namespace {
constexpr size_t kMaxTokenizerBytes = size_t(64) << 20;  // LLaMA's is 0.5 MB, the largest known ~5 MB
}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& model_file) {
  std::error_code ec;
  SSPAN_CHECK(std::filesystem::is_regular_file(model_file, ec),
              "tokenizer model {} does not exist or is not a file", model_file.string());
  return from_bytes(io::read_regular_file(model_file, kMaxTokenizerBytes, "tokenizer model"), model_file.string());
}

Tokenizer Tokenizer::from_bytes(std::string_view model_proto, std::string_view source) {
  Tokenizer tok;
  tok.impl_->file = std::string(source);
  sentencepiece::util::Status status;
  try {
    status = tok.impl_->sp.LoadFromSerializedProto(model_proto);
  } catch (const std::exception& e) {  // its trie builder throws for pieces it cannot index
    SSPAN_FAIL("tokenizer model {} could not be loaded: {}", source, e.what());
  }
  SSPAN_CHECK(status.ok(), "tokenizer model {} could not be loaded: {}", source, status.ToString());
  SSPAN_CHECK(tok.impl_->sp.GetPieceSize() > 0, "tokenizer model {} has no pieces", source);
  std::vector<int> sentinel;
  SSPAN_CHECK(tok.impl_->sp.Encode("\n", &sentinel).ok() && !sentinel.empty(),
              "tokenizer model {} cannot encode a newline", source);
  tok.impl_->newline_sentinel = std::move(sentinel);
  return tok;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  const auto status = impl_->sp.Encode(text, &ids);
  SSPAN_CHECK(status.ok(), "tokenizer {}: encode failed: {}", impl_->file.string(),
              status.ToString());
  if (add_bos) ids.insert(ids.begin(), bos_id());
  return ids;
}

std::vector<int> Tokenizer::encode_continuation(std::string_view text) const {
  if (text.empty()) return {};
  std::string with_sentinel = "\n";
  with_sentinel.append(text);
  std::vector<int> ids = encode(with_sentinel, /*add_bos=*/false);
  const auto& sentinel = impl_->newline_sentinel;
  const bool starts_with_sentinel =
      ids.size() >= sentinel.size() && std::equal(sentinel.begin(), sentinel.end(), ids.begin());
  SSPAN_CHECK(starts_with_sentinel,
              "tokenizer {}: a newline merges with the text that follows it; "
              "continuation encoding is not supported for this model",
              impl_->file.string());
  ids.erase(ids.begin(), ids.begin() + std::ptrdiff_t(sentinel.size()));
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  for (int id : ids)
    SSPAN_CHECK(id >= 0 && id < vocab_size(), "tokenizer {}: token id {} outside vocabulary [0, {})",
                impl_->file.string(), id, vocab_size());
  std::string text;
  const auto status = impl_->sp.Decode(ids, &text);
  SSPAN_CHECK(status.ok(), "tokenizer {}: decode failed: {}", impl_->file.string(),
              status.ToString());
  return text;
}

// The byte a piece "<0xAB>" stands for.
static char byte_piece_value(const std::string& piece) {
  // Byte pieces are exactly "<0x" + two hex digits + ">".
  SSPAN_CHECK(piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>',
              "byte piece {} is not of the form <0xAB>", piece);
  return char(std::stoi(piece.substr(3, 2), nullptr, 16));
}

std::string Tokenizer::token_bytes(int id) const {
  SSPAN_CHECK(id >= 0 && id < vocab_size(), "tokenizer {}: token id {} outside vocabulary [0, {})",
              impl_->file.string(), id, vocab_size());
  const auto& sp = impl_->sp;
  if (sp.IsControl(id)) return {};
  // An unknown piece has no known surface; U+FFFD says so without guessing.
  if (sp.IsUnknown(id)) return "\xEF\xBF\xBD";
  std::string piece = sp.IdToPiece(id);
  if (sp.IsByte(id)) return std::string(1, byte_piece_value(piece));
  // "▁" (U+2581, bytes E2 96 81) is the space marker.
  static constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";
  std::string out;
  out.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    if (std::string_view(piece).substr(i, kSpaceMarker.size()) == kSpaceMarker) {
      out.push_back(' ');
      i += kSpaceMarker.size();
    } else {
      out.push_back(piece[i++]);
    }
  }
  return out;
}

std::string Tokenizer::piece(int id) const {
  SSPAN_CHECK(id >= 0 && id < vocab_size(), "tokenizer {}: token id {} outside vocabulary [0, {})",
              impl_->file.string(), id, vocab_size());
  return impl_->sp.IdToPiece(id);
}

int Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }
int Tokenizer::bos_id() const { return impl_->sp.bos_id(); }
int Tokenizer::eos_id() const { return impl_->sp.eos_id(); }
bool Tokenizer::is_control(int id) const {
  return id >= 0 && id < vocab_size() && impl_->sp.IsControl(id);
}

}  // namespace sspan
