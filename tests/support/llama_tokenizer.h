#pragma once
// The real LLaMA tokenizer for tests, loaded once; tests skip when it is absent.
#include <gtest/gtest.h>

#include "sspan/tokenizer.h"
#include "support/test_paths.h"

namespace sspan::test {

// nullptr when the tokenizer file is absent.
inline const Tokenizer* llama_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = [] {
    const auto path = llama_tokenizer_path();
    return path.empty() ? nullptr : std::make_unique<Tokenizer>(Tokenizer::load(path));
  }();
  return tok.get();
}

}  // namespace sspan::test

#define SSPAN_REQUIRE_LLAMA_TOKENIZER(var)                                                  \
  const ::sspan::Tokenizer* var = ::sspan::test::llama_tokenizer();                        \
  if (var == nullptr)                                                                       \
  GTEST_SKIP() << "LLaMA tokenizer.model not found: set SSPAN_LLAMA_TOKENIZER or "          \
                  "SSPAN_TEST_LLAMA_TOKENIZER"
