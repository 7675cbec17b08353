#pragma once
// What the BPE tokenizer fuzz targets (tokenizer.json, tiktoken) ask of a tokenizer that
// loaded: it encodes (new text and continuation) and decodes a few texts, invalid UTF-8
// included, every id inside its vocabulary; anything else aborts (a finding).
#include <cstdlib>

#include "tokenizer/tokenizer_model.h"

namespace sspan::fuzz {

inline void exercise_bpe(const TokenizerModel& tok) {
  for (const char* s : {"Hello world", "  12345 it's\n\n\xF0\x9F\x98\x80", "\xFF\xC3(", "<|endoftext|>x",
                        "<|begin_of_text|>x"}) {
    for (bool continuation : {false, true}) {
      const auto ids = tok.encode(s, continuation);
      for (int id : ids)
        if (id < 0 || id >= tok.vocab_size) std::abort();
      tok.decode(ids);
    }
  }
}

}  // namespace sspan::fuzz
