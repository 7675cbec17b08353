#pragma once
// Where tests find shared test data and scratch space.
#include <filesystem>
#include <string>

namespace sspan::test {

// The real LLaMA tokenizer: $SSPAN_LLAMA_TOKENIZER, else the configured default path.
// Empty when the file is absent (callers GTEST_SKIP with a message).
std::filesystem::path llama_tokenizer_path();

// A fresh, empty directory under the system temp dir, unique to this test.
std::filesystem::path scratch_dir(const std::string& tag);

// The project source tree (for committed test data).
std::filesystem::path source_dir();

}  // namespace sspan::test
