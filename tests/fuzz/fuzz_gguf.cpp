// libFuzzer entry: any byte string given to parse_gguf either parses, with every tensor
// inside the input, or throws sspan::Error. Crashes, sanitizer reports and other
// exception types are findings.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "io/gguf.h"
#include "sspan/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto header = sspan::parse_gguf(bytes, "fuzz.gguf");
    for (const auto& t : header.tensors)
      if (t.data < bytes.data() + header.data_start || t.data + t.nbytes > bytes.data() + size) std::abort();
  } catch (const sspan::Error&) {
  }
  return 0;
}
