#include "support/test_paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace sspan::test {
namespace {

// Removes the scratch directories a test made once it has passed: those made inside a test
// when that test ends, those made outside one (suite fixtures) when the program ends with no
// failure. A failed test keeps its directories for a look; SSPAN_KEEP_TEST_DIRS=1 keeps all.
class ScratchCleaner : public ::testing::EmptyTestEventListener {
 public:
  void add(const std::filesystem::path& dir, bool in_test) {
    std::lock_guard lock(mutex_);
    (in_test ? test_dirs_ : program_dirs_).push_back(dir);
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    remove(test_dirs_, info.result() && !info.result()->Failed());
  }
  void OnTestProgramEnd(const ::testing::UnitTest& unit) override {
    remove(test_dirs_, false);
    remove(program_dirs_, unit.Passed());
  }

 private:
  void remove(std::vector<std::filesystem::path>& dirs, bool passed) {
    std::lock_guard lock(mutex_);
    const char* keep = std::getenv("SSPAN_KEEP_TEST_DIRS");
    if (passed && !(keep && *keep && std::string(keep) != "0"))
      for (const auto& d : dirs) {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      }
    dirs.clear();
  }
  std::mutex mutex_;
  std::vector<std::filesystem::path> test_dirs_, program_dirs_;
};

ScratchCleaner& scratch_cleaner() {
  // Owned by gtest's listener list once appended; created on first use, so only test
  // programs that make scratch directories install it.
  static ScratchCleaner* cleaner = [] {
    auto* c = new ScratchCleaner;
    ::testing::UnitTest::GetInstance()->listeners().Append(c);
    return c;
  }();
  return *cleaner;
}

}  // namespace

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
  scratch_cleaner().add(dir, info != nullptr);
  return dir;
}

std::filesystem::path source_dir() { return SSPAN_SOURCE_DIR; }

}  // namespace sspan::test
