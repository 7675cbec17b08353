// libFuzzer entry: any byte string given as a tokenizer.json either is refused with
// sspan::Error or gives a tokenizer that passes exercise_bpe.
#include <cstddef>
#include <cstdint>
#include <string>

#include "bpe_checks.h"
#include "sspan/error.h"
#include "tokenizer/bpe_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    sspan::fuzz::exercise_bpe(*sspan::build_bpe(sspan::read_tokenizer_json(text, "fuzz/tokenizer.json", "")));
  } catch (const sspan::Error&) {
  }
  return 0;
}
