// SentencePiece tokenizer.model with Hugging Face LlamaTokenizer (legacy) conventions.
#include <sentencepiece_processor.h>

#include <algorithm>

#include "common/check.h"
#include "tokenizer/tokenizer_model.h"

namespace sspan {
namespace {

// The byte a piece "<0xAB>" stands for.
char byte_piece_value(const std::string& piece) {
  // Byte pieces are exactly "<0x" + two hex digits + ">".
  SSPAN_CHECK(piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>',
              "byte piece {} is not of the form <0xAB>", piece);
  return char(std::stoi(piece.substr(3, 2), nullptr, 16));
}

class SentencePieceModel final : public TokenizerModel {
 public:
  SentencePieceModel(std::string_view model_proto, const std::string& path) {
    source = path;
    kind = "SentencePiece";
    sentencepiece::util::Status status;
    try {
      status = sp_.LoadFromSerializedProto(model_proto);
    } catch (const std::exception& e) {  // its trie builder throws for pieces it cannot index
      SSPAN_FAIL("tokenizer model {} could not be loaded: {}", path, e.what());
    }
    SSPAN_CHECK(status.ok(), "tokenizer model {} could not be loaded: {}", path, status.ToString());
    SSPAN_CHECK(sp_.GetPieceSize() > 0, "tokenizer model {} has no pieces", path);
    vocab_size = sp_.GetPieceSize();
    bos_id = sp_.bos_id();
    eos_id = sp_.eos_id();
    add_bos = bos_id >= 0;
    SSPAN_CHECK(sp_.Encode("\n", &newline_sentinel_).ok() && !newline_sentinel_.empty(),
                "tokenizer model {} cannot encode a newline", path);
  }

  std::vector<int> encode(std::string_view text, bool continuation) const override {
    if (!continuation) return sp_encode(text);
    if (text.empty()) return {};
    // A "\n" sentinel in front takes the dummy-prefix space, so the text is tokenized
    // exactly as mid-sequence: a newline is a byte piece that merges with nothing.
    std::string with_sentinel = "\n";
    with_sentinel.append(text);
    std::vector<int> ids = sp_encode(with_sentinel);
    const auto& sentinel = newline_sentinel_;
    const bool starts_with_sentinel =
        ids.size() >= sentinel.size() && std::equal(sentinel.begin(), sentinel.end(), ids.begin());
    SSPAN_CHECK(starts_with_sentinel,
                "tokenizer {}: a newline merges with the text that follows it; "
                "continuation encoding is not supported for this model",
                source);
    ids.erase(ids.begin(), ids.begin() + std::ptrdiff_t(sentinel.size()));
    return ids;
  }

  std::string decode(const std::vector<int>& ids) const override {
    std::string text;
    const auto status = sp_.Decode(ids, &text);
    SSPAN_CHECK(status.ok(), "tokenizer {}: decode failed: {}", source, status.ToString());
    return text;
  }

  std::string token_bytes(int id) const override {
    if (sp_.IsControl(id)) return {};
    // An unknown piece has no known surface; U+FFFD says so without guessing.
    if (sp_.IsUnknown(id)) return "\xEF\xBF\xBD";
    std::string piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) return std::string(1, byte_piece_value(piece));
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

  std::string piece(int id) const override { return sp_.IdToPiece(id); }
  bool is_control(int id) const override { return sp_.IsControl(id); }

 private:
  std::vector<int> sp_encode(std::string_view text) const {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    SSPAN_CHECK(status.ok(), "tokenizer {}: encode failed: {}", source, status.ToString());
    return ids;
  }

  sentencepiece::SentencePieceProcessor sp_;
  std::vector<int> newline_sentinel_;  // ids of "\n" encoded on its own
};

}  // namespace

std::unique_ptr<TokenizerModel> load_sentencepiece(std::string_view model_proto, const std::string& source) {
  return std::make_unique<SentencePieceModel>(model_proto, source);
}

}  // namespace sspan
