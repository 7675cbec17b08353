// StreamDecoder: emits token text as soon as it forms complete UTF-8 characters.
#include "sspan/tokenizer.h"
#include "tokenizer/tokenizer_model.h"

namespace sspan {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the UTF-8 sequence a lead byte announces; 0 for a byte that cannot lead.
int sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether byte i (i >= 1) of a sequence led by `lead` is acceptable (RFC 3629 ranges:
// no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_continuation(unsigned char lead, int i, unsigned char b) {
  if (i == 1) {
    if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  }
  return b >= 0x80 && b <= 0xBF;
}

// Moves the complete prefix of `pending` into `out`: valid characters as they are, each
// byte that can never start or continue a valid character as U+FFFD. A trailing
// sequence that is valid so far but incomplete stays in `pending`.
void drain_complete(std::string& pending, std::string& out) {
  size_t i = 0;
  while (i < pending.size()) {
    const auto lead = static_cast<unsigned char>(pending[i]);
    const int len = sequence_length(lead);
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    int have = 1;
    while (have < len && i + size_t(have) < pending.size() &&
           valid_continuation(lead, have, static_cast<unsigned char>(pending[i + have])))
      ++have;
    if (have == len) {
      out.append(pending, i, size_t(len));
      i += size_t(len);
    } else if (i + size_t(have) == pending.size()) {
      break;  // valid so far, waiting for more bytes
    } else {
      out += kReplacement;  // broken sequence: replace its valid prefix, resume after it
      i += size_t(have);
    }
  }
  pending.erase(0, i);
}

}  // namespace

std::string StreamDecoder::push(int id) {
  pending_ += tok_->token_bytes(id);
  std::string out;
  drain_complete(pending_, out);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  drain_complete(pending_, out);
  if (!pending_.empty()) out += kReplacement;  // an incomplete character at the end
  pending_.clear();
  return out;
}

std::string replace_invalid_utf8(std::string bytes) {
  std::string out;
  drain_complete(bytes, out);
  if (!bytes.empty()) out += kReplacement;  // an incomplete character at the end
  return out;
}

}  // namespace sspan
