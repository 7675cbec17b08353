#pragma once
// PROMPTS.jsonl for sspan-generate --batch: one prompt per line, as {"prompt": "..."} or
// as a JSON string; blank lines are skipped.
#include <string>
#include <string_view>
#include <vector>

namespace sspan::tools {

// The prompts of `text`. Throws sspan::Error naming `source` and the line for a line that
// is not strict JSON (io::parse_json_strict) of either form, or when no prompt is found.
std::vector<std::string> parse_batch_jsonl(std::string_view text, std::string_view source);

}  // namespace sspan::tools
