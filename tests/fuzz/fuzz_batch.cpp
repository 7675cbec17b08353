// libFuzzer target: sspan-generate's --batch JSONL reader. It returns prompts or throws
// sspan::Error naming the file and line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "generate/batch_file.h"
#include "io/json_strict.h"
#include "sspan/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto prompts = sspan::tools::parse_batch_jsonl({reinterpret_cast<const char*>(data), size}, "fuzz.jsonl");
    if (prompts.empty()) std::abort();
    for (const auto& p : prompts)  // JSON strings decode to valid UTF-8
      if (sspan::io::find_invalid_utf8(p) != std::string::npos) std::abort();
  } catch (const sspan::Error&) {
  }
  return 0;
}
