#pragma once
// Where tests find shared test data and scratch space.
#include <filesystem>
#include <string>

namespace sspan::test {

// The real LLaMA tokenizer: $SSPAN_LLAMA_TOKENIZER, else the configured default path.
// Empty when the file is absent (callers GTEST_SKIP with a message).
std::filesystem::path llama_tokenizer_path();

// A tokenizer the project ships (models/arith-tiny/tokenizer.model: SentencePiece BPE,
// 300 pieces, byte fallback), for tests that need a tokenizer but not LLaMA's vocabulary.
std::filesystem::path project_tokenizer_path();

// SmolLM2-135M-Instruct as scripts/fetch_smollm2.py leaves it: $SSPAN_SMOLLM2_DIR, else
// models/smollm2 in the source tree; holds SmolLM2-135M-Instruct.Q4_1.gguf and hf/ (the
// converted Hugging Face layout). Empty when absent (callers GTEST_SKIP with the message).
std::filesystem::path smollm2_dir();
std::filesystem::path smollm2_gguf();  // the GGUF file in smollm2_dir()
std::string smollm2_missing_message();

// A fresh, empty directory under the system temp dir, unique to this test; removed when
// the test passes (kept when it fails, or with SSPAN_KEEP_TEST_DIRS=1).
std::filesystem::path scratch_dir(const std::string& tag);

// The project source tree (for committed test data).
std::filesystem::path source_dir();

}  // namespace sspan::test
