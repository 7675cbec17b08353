// libFuzzer target: model.safetensors.index.json text into io::parse_shard_index. It
// parses, with every shard a bare file name, or throws sspan::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "io/shard_index.h"
#include "sspan/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto map = sspan::io::parse_shard_index({reinterpret_cast<const char*>(data), size}, "fuzz/index.json");
    for (const auto& [tensor, shard] : map)
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "..") std::abort();
  } catch (const sspan::Error&) {
  }
  return 0;
}
