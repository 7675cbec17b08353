// libFuzzer target: a SentencePiece tokenizer.model image into load_sentencepiece (what
// Tokenizer::load runs for such a file). It loads or throws sspan::Error; a model that
// loads encodes and decodes text and gives the bytes and piece of its first ids, each
// either working or an sspan::Error.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sspan/error.h"
#include "tokenizer/tokenizer_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto tok = sspan::load_sentencepiece({reinterpret_cast<const char*>(data), size}, "fuzz.model");
    for (bool continuation : {false, true}) {
      const auto ids = tok->encode("Hello world\n(42 * 56) + 7 [0]\ncaf\xc3\xa9", continuation);
      for (int id : ids)
        if (id < 0 || id >= tok->vocab_size) std::abort();
      (void)tok->decode(ids);
    }
    for (int id = 0; id < std::min(tok->vocab_size, 512); ++id) {
      try {
        (void)tok->token_bytes(id);
        (void)tok->piece(id);
      } catch (const sspan::Error&) {
      }
    }
  } catch (const sspan::Error&) {
  }
  return 0;
}
