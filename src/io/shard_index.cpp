#include "io/shard_index.h"

#include "common/check.h"
#include "io/json_strict.h"

namespace sspan::io {
namespace {

void check_shard_name(const std::string& shard, const std::string& tensor, std::string_view index) {
  SSPAN_CHECK(!shard.empty(), "{}: tensor '{}' maps to an empty shard name", index, tensor);
  const bool bare = shard.find('/') == std::string::npos && shard.find('\\') == std::string::npos &&
                    shard != "." && shard != ".." && shard.find('\0') == std::string::npos;
  SSPAN_CHECK(bare, "{}: tensor '{}' maps to shard '{}', which is not a plain file name in the model directory",
              index, tensor, shard);
}

}  // namespace

std::map<std::string, std::string> parse_shard_index(std::string_view text, std::string_view source) {
  const auto j = parse_json_strict(text, source);
  SSPAN_CHECK(j.is_object(), "{}: not a JSON object", source);
  const auto wm = j.find("weight_map");
  SSPAN_CHECK(wm != j.end() && wm->is_object(), "{}: missing \"weight_map\" object", source);
  SSPAN_CHECK(!wm->empty(), "{}: \"weight_map\" lists no tensors", source);
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : wm->items()) {
    SSPAN_CHECK(shard.is_string(), "{}: tensor '{}': shard is not a string (got {})", source, tensor,
                json_summary(shard));
    const auto& name = shard.get_ref<const std::string&>();
    check_shard_name(name, tensor, source);
    out.emplace(tensor, name);
  }
  return out;
}

}  // namespace sspan::io
