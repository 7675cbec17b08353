#pragma once
// JSON parsing for files we do not trust: checkpoint headers, indexes, configs, span
// grammars, prompt batches. Every reader of untrusted JSON goes through
// parse_json_strict, and error messages quote values through json_summary.
//
// nlohmann::json keeps the last of two equal keys without a word; a repeated key in a
// weights header or config is either corruption or an attack, so it is an error here.
// Its dump(), copy and comparison recurse once per nesting level, so a value nested
// 100,000 deep overflows the stack: nesting is bounded at parse time.
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sspan::io {

// Containers (objects and arrays) nested deeper than this are refused. Real configs and
// headers nest 3 or 4 levels.
inline constexpr int kMaxJsonDepth = 64;

// Parse `text` as one JSON value (surrounding whitespace allowed). Throws sspan::Error
// naming `source` for invalid UTF-8, syntax errors, numbers beyond double range,
// duplicate object keys and nesting deeper than kMaxJsonDepth.
nlohmann::json parse_json_strict(std::string_view text, std::string_view source);

// A short description of a value for an error message: scalars as JSON (strings cut
// after 40 bytes), containers by kind and size. Never the whole of a big value.
std::string json_summary(const nlohmann::json& value);

// `text` for an error message: at most 40 bytes (cut at a character boundary) and a note
// of the full length when cut.
std::string brief_text(std::string_view text);

// The byte offset of the first invalid UTF-8 sequence in `text`, or npos when valid.
// Overlong forms, surrogates and code points above U+10FFFF are invalid.
size_t find_invalid_utf8(std::string_view text);

}  // namespace sspan::io
