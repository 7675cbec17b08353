#pragma once
// model.safetensors.index.json: which shard file holds each tensor of a sharded
// checkpoint. Parsing is a pure function over the text (the fuzz target calls it).
#include <map>
#include <string>
#include <string_view>

namespace sspan::io {

// tensor name -> shard file name, for every entry of "weight_map". Every shard name is a
// bare file name (no directory part, not "." or ".."): a hostile index cannot point at
// /etc/passwd or ../other-model. Throws sspan::Error naming `source` otherwise.
std::map<std::string, std::string> parse_shard_index(std::string_view text, std::string_view source);

}  // namespace sspan::io
