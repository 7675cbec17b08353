// StreamDecoder: emits token text as soon as it forms complete UTF-8 characters.
#include "sspan/tokenizer.h"
#include "tokenizer/unicode.h"

namespace sspan {

std::string StreamDecoder::push(int id) {
  pending_ += tok_->token_bytes(id);
  std::string out;
  unicode::drain_valid_utf8(pending_, out);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  unicode::drain_valid_utf8(pending_, out);
  if (!pending_.empty()) out += unicode::kReplacement;  // an incomplete character at the end
  pending_.clear();
  return out;
}

}  // namespace sspan
