// libFuzzer target: config.json text into ModelConfig::from_json. It parses or throws
// sspan::Error; on success every size the engine derives from it is computed (UBSan
// reports an overflow) and the RoPE table is built when its size is small.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sspan/config.h"
#include "sspan/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto c = sspan::ModelConfig::from_json({reinterpret_cast<const char*>(data), size}, "fuzz/config.json");
    if (c.q_dim() <= 0 || c.kv_dim() <= 0 || c.num_parameters() <= 0 || c.eos_token_ids.empty()) std::abort();
    if (c.head_dim <= 4096 && sspan::rope_inv_freq(c).size() != size_t(c.head_dim / 2)) std::abort();
  } catch (const sspan::Error&) {
  }
  return 0;
}
