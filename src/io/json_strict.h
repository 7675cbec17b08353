#pragma once
// JSON parsing for files we do not trust: checkpoint headers, indexes and configs.
// nlohmann::json keeps the last of two equal keys without a word; a repeated key in a
// weights header or config is either corruption or an attack, so it is an error here.
#include <nlohmann/json.hpp>
#include <string_view>

namespace sspan::io {

// Parse `text` as one JSON value (surrounding whitespace allowed). Throws sspan::Error
// naming `source` for invalid UTF-8, syntax errors and duplicate object keys.
nlohmann::json parse_json_strict(std::string_view text, std::string_view source);

// The byte offset of the first invalid UTF-8 sequence in `text`, or npos when valid.
// Overlong forms, surrogates and code points above U+10FFFF are invalid.
size_t find_invalid_utf8(std::string_view text);

}  // namespace sspan::io
