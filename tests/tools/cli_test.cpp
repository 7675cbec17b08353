// sspan-generate as a user runs it: streaming output, --json, --span-trace, --score, and
// clear errors with a non-zero exit for bad flags and bad inputs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "checkpoint_writer/checkpoint_writer.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

using ::testing::HasSubstr;

struct CliRun {
  int code;
  std::string out, err;
};

CliRun run_cli(const std::string& args, const std::string& stdin_text = "") {
  const auto dir = test::scratch_dir("run");
  const auto in = dir / "stdin", out = dir / "stdout", err = dir / "stderr";
  std::ofstream(in) << stdin_text;
  const std::string cmd = std::string(SSPAN_GENERATE_BIN) + " " + args + " <" + in.string() + " >" + out.string() +
                          " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out), slurp(err)};
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = test::project_tokenizer_path();
    TinyLlamaSpec spec;
    spec.vocab_size = 300;  // the project's tokenizer (no LLaMA vocabulary needed)
    spec.hidden_size = 64;
    spec.num_kv_heads = 2;
    model_ = write_tiny_llama(test::scratch_dir("model"), spec);
    prompt_ = model_ / "prompt.txt";
    std::ofstream(prompt_) << "(42 * 56) + (5 * 32) [0]\n";
  }
  std::string base() const { return "-m " + model_.string() + " --tokenizer " + tok_.string() + " -t 2 "; }
  std::filesystem::path tok_, model_, prompt_;
};

TEST_F(Cli, StreamsTheContinuationAndReportsSpeed) {
  const CliRun r = run_cli(base() + "-f " + prompt_.string() + " -n 12 --span arith");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::StartsWith("(42 * 56) + (5 * 32) [0]\n"));
  EXPECT_THAT(r.err, HasSubstr("decode 12 tokens"));
  EXPECT_THAT(r.err, HasSubstr("tokens/s"));
  EXPECT_THAT(r.err, HasSubstr("mean sparsity"));
}

TEST_F(Cli, ReadsThePromptFromStandardInput) {
  const CliRun a = run_cli(base() + "-f - -n 5 --temp 0", "Hello world");
  const CliRun b = run_cli(base() + "-f " + prompt_.string() + " -n 5");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_THAT(a.out, ::testing::StartsWith("Hello world"));
  EXPECT_NE(a.out, b.out);
}

TEST_F(Cli, JsonHasOneObjectPerRequest) {
  const auto batch = model_ / "batch.jsonl";
  std::ofstream(batch) << R"({"prompt": "Hello world"})" << "\n" << R"("The quick brown fox")" << "\n";
  const CliRun r = run_cli(base() + "--batch " + batch.string() + " -n 6 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    for (const char* key : {"prompt", "text", "ids", "stop", "timings"}) EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_EQ(j["ids"].size(), 6u);
    EXPECT_EQ(j["stop"], "length");
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST_F(Cli, SpanTraceHasExactlyTheDocumentedKeys) {
  const auto trace = model_ / "trace.jsonl";
  const CliRun r = run_cli(base() + "-f " + prompt_.string() + " -n 10 --span arith --span-trace " + trace.string());
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream f(trace);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(f, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_GT(rows.size(), 10u);
  const std::set<std::string> keys = {"pos",  "id",       "piece",      "text",    "generated",
                                     "line", "mode",     "attended",   "n_attended", "sparsity"};
  for (size_t p = 0; p + 1 < rows.size(); ++p) {
    std::set<std::string> got;
    for (const auto& [k, v] : rows[p].items()) got.insert(k);
    EXPECT_EQ(got, keys) << "row " << p;
    EXPECT_EQ(rows[p]["pos"], p);
    EXPECT_DOUBLE_EQ(double(rows[p]["sparsity"]),
                     1.0 - double(rows[p]["n_attended"]) / double(p + 1));
  }
  EXPECT_EQ(rows[0]["id"], 1);  // BOS
  EXPECT_TRUE(rows.back().contains("mean_sparsity"));
  EXPECT_TRUE(rows.back().contains("events"));
}

TEST_F(Cli, ScoresACompletion) {
  const auto comp = model_ / "completion.txt";
  std::ofstream(comp) << "[-1] 42 * 56=2352 [1]\n[0,1] 2512\n";
  const CliRun r = run_cli(base() + "-f " + prompt_.string() + " --score " + comp.string() + " --span arith --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["tokens"].size(), 10u);
  EXPECT_GT(double(j["perplexity"]), 1.0);
  EXPECT_GT(int(j["span"]["sparse_tokens"]), 0);
}

TEST_F(Cli, BadInputsAreClearErrors) {
  struct Case {
    std::string args, stdin_text, message;
  };
  const auto bad_model = test::scratch_dir("bad");
  std::ofstream(bad_model / "config.json") << "{\"hidden_size\": 64}";
  std::ofstream(bad_model / "model.safetensors") << "garbage";
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "word ";
  const std::vector<Case> cases = {
      {"", "", "--model is required"},
      {base() + "-f - --temp -1", "x", "--temp"},
      {base() + "-f - --top-p 2", "x", "--top-p"},
      {base() + "-f - --span-block 48", "x", "--span-block"},
      {base() + "-f - --device tpu", "x", "--device"},
      {base() + "-f - --span nonsense", "x", "span policy 'nonsense'"},
      {base() + "-f /no/such/file", "", "cannot read prompt file"},
      {base() + "", "", "give a prompt"},
      {base() + "-f - --max-context 16", long_prompt, "the context holds 16"},
      {"-m " + bad_model.string() + " -f -", "x", "config.json"},
      {"-m /no/such/dir -f -", "x", "/no/such/dir"},
  };
  for (const auto& c : cases) {
    const CliRun r = run_cli(c.args, c.stdin_text);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_LT(r.code, 128) << "crashed: " << c.args;
    EXPECT_THAT(r.err + r.out, HasSubstr(c.message)) << c.args;
  }
}

}  // namespace
}  // namespace sspan
