#include "support/test_paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace sspan::test {

std::filesystem::path llama_tokenizer_path() {
  std::filesystem::path p = SSPAN_TEST_LLAMA_TOKENIZER;
  if (const char* env = std::getenv("SSPAN_LLAMA_TOKENIZER"); env && *env) p = env;
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) ? p : std::filesystem::path{};
}

std::filesystem::path project_tokenizer_path() {
  return std::filesystem::path(SSPAN_SOURCE_DIR) / "models" / "arith-tiny" / "tokenizer.model";
}

std::filesystem::path smollm2_dir() {
  std::filesystem::path p = std::filesystem::path(SSPAN_SOURCE_DIR) / "models" / "smollm2";
  if (const char* env = std::getenv("SSPAN_SMOLLM2_DIR"); env && *env) p = env;
  std::error_code ec;
  const bool complete = std::filesystem::is_regular_file(p / "SmolLM2-135M-Instruct.Q4_1.gguf", ec) &&
                        std::filesystem::is_regular_file(p / "hf" / "model.safetensors", ec);
  return complete ? p : std::filesystem::path{};
}

std::filesystem::path smollm2_gguf() { return smollm2_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"; }

std::string smollm2_missing_message() {
  return "SmolLM2-135M-Instruct not fetched: run scripts/fetch_smollm2.py (needs PyPI), or set SSPAN_SMOLLM2_DIR";
}

std::filesystem::path scratch_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "none";
  for (auto& c : name)
    if (c == '/') c = '_';
  auto dir = std::filesystem::temp_directory_path() /
             ("sspan-test-" + std::to_string(::getpid()) + "-" + name + "-" + tag + "-" +
              std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::filesystem::path source_dir() { return SSPAN_SOURCE_DIR; }

}  // namespace sspan::test
