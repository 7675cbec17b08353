// libFuzzer target: a SentencePiece tokenizer.model image into Tokenizer::from_bytes. It
// loads or throws sspan::Error; a tokenizer that loads encodes and decodes text and
// gives the bytes and piece of its first ids, each either working or an sspan::Error.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "sspan/error.h"
#include "sspan/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto tok = sspan::Tokenizer::from_bytes({reinterpret_cast<const char*>(data), size}, "fuzz.model");
    const auto ids = tok.encode("Hello world\n(42 * 56) + 7 [0]\ncaf\xc3\xa9", true);
    (void)tok.decode(ids);
    (void)tok.encode_continuation(" more");
    sspan::StreamDecoder stream(tok);
    for (int id = 0; id < std::min(tok.vocab_size(), 512); ++id) {
      (void)tok.token_bytes(id);
      (void)tok.piece(id);
      (void)stream.push(id);
    }
    (void)stream.finish();
  } catch (const sspan::Error&) {
  }
  return 0;
}
