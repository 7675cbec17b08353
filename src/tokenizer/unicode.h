#pragma once
// The little Unicode the tokenizers need: UTF-8 decoding that never fails (a byte that
// is not part of valid UTF-8 becomes its own "character" of no class), the letter /
// number / whitespace classes of the pre-tokenizer patterns, and UTF-8 encoding.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sspan::unicode {

// One character of a text: its code point and where its bytes are. An invalid byte has
// cp = kInvalid and size 1.
struct Char {
  static constexpr uint32_t kInvalid = 0xFFFFFFFFu;
  uint32_t cp = 0;
  uint32_t offset = 0;
  uint32_t size = 0;
};

std::vector<Char> decode_utf8(std::string_view text);

// Length of the UTF-8 sequence a lead byte announces; 0 for a byte that cannot lead.
int sequence_length(unsigned char lead);

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Moves the complete prefix of `pending` into `out`: valid characters as they are, each
// maximal invalid subpart as U+FFFD. A trailing sequence that is valid so far but
// incomplete stays in `pending` (a streaming decoder waits for its next bytes).
void drain_valid_utf8(std::string& pending, std::string& out);
// The whole of `bytes` made valid UTF-8 the same way (an incomplete end is U+FFFD too).
std::string replace_invalid_utf8(std::string bytes);
void append_utf8(uint32_t cp, std::string& out);

bool is_letter(uint32_t cp);      // general category L*
bool is_number(uint32_t cp);      // general category N*
bool is_whitespace(uint32_t cp);  // the White_Space property (regex \s)

}  // namespace sspan::unicode
