// libFuzzer entry: any byte string given as a tokenizer.json either is refused with
// sspan::Error or gives a tokenizer that encodes and decodes a few texts (including
// invalid UTF-8) without crashing, every id inside its vocabulary.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sspan/error.h"
#include "tokenizer/bpe_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto tok = sspan::build_bpe(sspan::read_tokenizer_json(text, "fuzz/tokenizer.json", ""));
    for (const char* s : {"Hello world", "  12345 it's\n\n\xF0\x9F\x98\x80", "\xFF\xC3(", "<|endoftext|>x"}) {
      for (bool continuation : {false, true}) {
        const auto ids = tok->encode(s, continuation);
        for (int id : ids)
          if (id < 0 || id >= tok->vocab_size) std::abort();
        tok->decode(ids);
      }
    }
  } catch (const sspan::Error&) {
  }
  return 0;
}
