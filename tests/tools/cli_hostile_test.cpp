// sspan-generate and sspan-random-model on hostile input: text that is not UTF-8 is
// refused up front (before any generation, so no work is lost), the --batch JSONL reader
// is strict, and writing a big random checkpoint streams instead of holding it in memory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <fstream>

#include "checkpoint_writer/checkpoint_writer.h"
#include "generate/batch_file.h"
#include "sspan/error.h"
#include "support/expect_error.h"
#include "support/test_paths.h"
#include "support/tool_run.h"

namespace sspan {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using test::ToolRun;

ToolRun run_tool(const std::string& command) { return test::run_command(command); }

using test::error_of;

void write_file(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

fs::path shipped_tokenizer() { return test::source_dir() / "models" / "arith-tiny" / "tokenizer.model"; }

class HostileCli : public ::testing::Test {
 protected:
  void SetUp() override {
    TinyLlamaSpec spec;
    spec.vocab_size = 300;  // the shipped tokenizer's
    dir_ = write_tiny_llama(test::scratch_dir("model"), spec);
  }
  std::string generate(const std::string& args) const {
    return std::string(SSPAN_GENERATE_BIN) + " -m " + dir_.string() + " --tokenizer " + shipped_tokenizer().string() +
           " -t 1 -n 4 " + args;
  }
  fs::path dir_;
};

// --- 7. a prompt that is not UTF-8 fails before generating, naming file and offset ---

TEST_F(HostileCli, PromptThatIsNotUtf8IsRefusedUpFront) {
  const auto prompt = dir_ / "latin1.txt";
  write_file(prompt, "caf\xe9 au lait\n");  // Latin-1, not UTF-8
  for (const char* mode : {"--json", ""}) {
    const ToolRun r = run_tool(generate(std::string(mode) + " -f " + prompt.string()));
    EXPECT_EQ(r.code, 1) << mode << r.err;
    EXPECT_THAT(r.err, AllOf(HasSubstr("prompt file '" + prompt.string() + "'"), HasSubstr("not valid UTF-8 (byte 3)")))
        << mode;
    EXPECT_EQ(r.out, "") << mode;  // nothing was generated, nothing echoed
  }
}

TEST_F(HostileCli, CompletionThatIsNotUtf8IsRefusedUpFront) {
  const auto prompt = dir_ / "p.txt", completion = dir_ / "c.txt";
  write_file(prompt, "(1 + 2) [0]\n");
  write_file(completion, "[-1] 3\xff\n");
  const ToolRun r = run_tool(generate("--json -f " + prompt.string() + " --score " + completion.string()));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("completion file '" + completion.string() + "'"), HasSubstr("byte 6")));
  EXPECT_EQ(r.out, "");
}

TEST_F(HostileCli, BatchLineThatIsNotUtf8NamesTheLine) {
  const auto batch = dir_ / "batch.jsonl";
  write_file(batch, "{\"prompt\": \"ok\"}\n\"bad \xc3\x28\"\n");
  const ToolRun r = run_tool(generate("--json --batch " + batch.string()));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr(batch.string() + ":2"), HasSubstr("not valid UTF-8")));
  EXPECT_EQ(r.out, "");
}

TEST_F(HostileCli, EndlessPromptStreamIsAnError) {
  const ToolRun r = run_tool(generate("-f /dev/zero"));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("prompt file '/dev/zero' is larger than 256 MB"));
}

TEST_F(HostileCli, Utf8PromptsStillWorkWithJson) {
  const auto prompt = dir_ / "utf8.txt";
  write_file(prompt, "caf\xc3\xa9 \xe2\x9c\x93\n");
  const ToolRun r = run_tool(generate("--json -f " + prompt.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"prompt\":\"caf\xc3\xa9 \xe2\x9c\x93\\n\""));
}

// --- the --batch reader: strict JSON per line, errors name file and line ---

TEST(BatchJsonl, ReadsBothFormsAndSkipsBlankLines) {
  EXPECT_THAT(tools::parse_batch_jsonl("{\"prompt\": \"a\"}\n\n  \r\n\"b\"\n{\"prompt\": \"c\", \"id\": 3}", "b.jsonl"),
              ElementsAre("a", "b", "c"));
}

TEST(BatchJsonl, RefusesWhatIsNotAPromptNamingTheLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\"a\"\n{\"prompt\": 5}", "b.jsonl:2: expected {\"prompt\": \"...\"} or a JSON string, got an object of 1 keys"},
      {"[1, 2]", "b.jsonl:1: expected"},
      {"{\"prompt\": \"a\", \"prompt\": \"b\"}", "b.jsonl:1: duplicate key 'prompt'"},
      {"{\"prompt\": " + std::string(100000, '[') + std::string(100000, ']') + "}", "b.jsonl:1: JSON nested deeper"},
      {"{\"prompt\": 1e999}", "b.jsonl:1: invalid JSON"},
      {"{\"prompt\": \"a\"", "b.jsonl:1: invalid JSON"},
      {"\n \n", "holds no prompts"},
  };
  for (const auto& [text, message] : cases)
    EXPECT_THAT(error_of([&] { tools::parse_batch_jsonl(text, "b.jsonl"); }), HasSubstr(message)) << message;
}

// --- 12. sspan-random-model streams its tensors to the file ---

// Peak resident set in MB of `argv` run as a child process (exit status in *code).
long peak_rss_mb(std::vector<std::string> argv, int* code) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ), 0) << argv[0];
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  struct rusage ru {};
  EXPECT_EQ(::wait4(pid, &status, 0, &ru), pid);
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return ru.ru_maxrss / 1024;  // kilobytes on Linux
}

TEST(RandomModel, WritesABigCheckpointInBoundedMemory) {
  // One layer of hidden 2048, intermediate 5632: 52M parameters, 104 MB in fp16. Built
  // in memory this took over 300 MB (fp32 values plus the file image).
  const auto dir = test::scratch_dir("big") / "model";
  int code = -1;
  const long peak_mb = peak_rss_mb({SSPAN_RANDOM_MODEL_BIN, "-o", dir.string(), "--hidden", "2048", "--intermediate",
                                    "5632", "--layers", "1", "--heads", "16", "--kv-heads", "16", "--dtype", "float16",
                                    "--tokenizer", shipped_tokenizer().string()},
                                   &code);
  ASSERT_EQ(code, 0);
  EXPECT_GT(fs::file_size(dir / "model.safetensors"), uint64_t(100'000'000));
#if defined(__SANITIZE_ADDRESS__)
  const long limit_mb = 250;  // the sanitizer's shadow memory and quarantine
#else
  const long limit_mb = 100;
#endif
  EXPECT_LT(peak_mb, limit_mb) << "peak resident set of sspan-random-model";
  RecordProperty("peak_rss_mb", int(peak_mb));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sspan
