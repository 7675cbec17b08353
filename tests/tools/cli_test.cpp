// sspan-generate as a user runs it: streaming output, --json, --span-trace, --score, clear
// errors with a non-zero exit for bad flags and bad inputs, the flags and habits of
// llama.cpp users, Ctrl-C; and sspan-eval's and sspan-random-model's outputs.
#include <gmock/gmock.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <functional>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "checkpoint_writer/checkpoint_writer.h"
#include "support/test_paths.h"
#include "support/tool_run.h"

namespace sspan {
namespace {

using ::testing::HasSubstr;

using CliRun = test::ToolRun;

CliRun run_cli(const std::string& args, const std::string& stdin_text = "") {
  return test::run_command(std::string(SSPAN_GENERATE_BIN) + " " + args, stdin_text);
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

// --- llama.cpp users' habits ---

TEST_F(Cli, LlamaCppFlagSpellings) {
  // -c is --max-context; nothing reaches stdout before the prompt is known to fit.
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "word ";
  const CliRun c = run_cli(base() + "-f - -c 16", long_prompt);
  EXPECT_EQ(c.code, 1);
  EXPECT_THAT(c.err, HasSubstr("the context holds 16"));
  EXPECT_EQ(c.out, "");
  // Range errors say the flag, the bound and the value.
  const CliRun n = run_cli(base() + "-p x -n -3");
  EXPECT_NE(n.code, 0);
  EXPECT_THAT(n.err + n.out, HasSubstr("-n must be >= 0, got -3"));
  const CliRun p = run_cli(base() + "-p x --top-p 2");
  EXPECT_THAT(p.err + p.out, HasSubstr("--top-p must be in [0, 1], got 2"));
  // --version, and --help with the defaults.
  const CliRun v = run_cli("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_THAT(v.out, HasSubstr("sspan-generate " SSPAN_VERSION));
  const CliRun h = run_cli("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_THAT(h.out, HasSubstr("256"));    // -n's default
  EXPECT_THAT(h.out, HasSubstr("dense"));  // --span's default
  EXPECT_THAT(h.out, HasSubstr("--min-p"));
  EXPECT_THAT(h.out, HasSubstr("--repeat-penalty"));
}

TEST_F(Cli, NglIsTheDeviceNotDashNGl) {
  const CliRun cpu = run_cli(base() + "-p x -n 2 -ngl 0");
  EXPECT_EQ(cpu.code, 0) << cpu.err;
  EXPECT_THAT(cpu.err, HasSubstr("| cpu"));
  // -ngl 99 asks for the GPU: past the parser (no device here, or no CUDA build), a
  // runtime error, not "-n gl".
  const CliRun gpu = run_cli(base() + "-p x -n 2 -ngl 99");
  if (gpu.code != 0) {
    EXPECT_THAT(gpu.err, HasSubstr("sspan-generate: error:"));
    EXPECT_THAT(gpu.err, ::testing::Not(HasSubstr("gl")));
  }
  const CliRun both = run_cli(base() + "-p x -n 2 -ngl 99 --device cpu");
  EXPECT_EQ(both.code, 1);
  EXPECT_THAT(both.err, HasSubstr("--device"));
}

TEST_F(Cli, SeedMinusOneIsDrawnAndPrinted) {
  auto seed_of = [](const std::string& err) {
    const size_t at = err.find("| seed ");
    return at == std::string::npos ? std::string() : err.substr(at + 7, err.find(' ', at + 7) - at - 7);
  };
  const CliRun a = run_cli(base() + "-p x -n 8 --temp 1");
  const CliRun b = run_cli(base() + "-p x -n 8 --temp 1 -s -1");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  ASSERT_FALSE(seed_of(a.err).empty()) << a.err;
  EXPECT_NE(seed_of(a.err), seed_of(b.err));  // two draws from 2^63
  // The printed seed reproduces the run.
  const CliRun again = run_cli(base() + "-p x -n 8 --temp 1 -s " + seed_of(a.err));
  EXPECT_EQ(again.out, a.out);
  const CliRun fixed = run_cli(base() + "-p x -n 8 --temp 1 --seed 7 --json");
  EXPECT_EQ(nlohmann::json::parse(fixed.out)["seed"], 7);
}

TEST_F(Cli, IgnoreEosAndTheStopReasonInTheStatsLine) {
  // Make the greedy first token the model's EOS: greedy generation then stops there.
  const CliRun first = run_cli(base() + "-p x -n 1 --json");
  ASSERT_EQ(first.code, 0) << first.err;
  const int id = nlohmann::json::parse(first.out)["ids"][0];
  auto config = nlohmann::json::parse(std::ifstream(model_ / "config.json"));
  config["eos_token_id"] = id;
  std::ofstream(model_ / "config.json") << config.dump();
  const CliRun eos = run_cli(base() + "-p x -n 5");
  ASSERT_EQ(eos.code, 0) << eos.err;
  EXPECT_THAT(eos.err, HasSubstr("| stop eos |"));
  const CliRun ignored = run_cli(base() + "-p x -n 5 --ignore-eos --json");
  ASSERT_EQ(ignored.code, 0) << ignored.err;
  const auto j = nlohmann::json::parse(ignored.out);
  EXPECT_EQ(j["stop"], "length");
  EXPECT_EQ(j["ids"].size(), 5u);
  EXPECT_EQ(j["ids"][0], id);
}

TEST_F(Cli, SpanTraceDashIsStandardOutput) {
  const CliRun r = run_cli(base() + "-f " + prompt_.string() + " -n 4 --span arith --span-trace -");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));  // only JSON
  ASSERT_GT(rows.size(), 4u);
  EXPECT_EQ(rows[0]["pos"], 0);
  EXPECT_TRUE(rows.back()["summary"]);
  EXPECT_FALSE(std::filesystem::exists("-"));
  // Scoring too: the trace alone on stdout.
  const auto comp = model_ / "completion.txt";
  std::ofstream(comp) << "[-1] 42 * 56=2352 [1]\n";
  const CliRun score = run_cli(base() + "-f " + prompt_.string() + " --score " + comp.string() + " --span-trace -");
  ASSERT_EQ(score.code, 0) << score.err;
  std::istringstream score_lines(score.out);
  for (std::string line; std::getline(score_lines, line);) EXPECT_NO_THROW(EXPECT_FALSE(nlohmann::json::parse(line).is_discarded())) << line;
  const CliRun with_json = run_cli(base() + "-p x --span-trace - --json");
  EXPECT_EQ(with_json.code, 1);
  EXPECT_THAT(with_json.err, HasSubstr("standard output"));
}

TEST_F(Cli, EmptyPromptAndIgnoredFlagsAreSaidPlainly) {
  const CliRun empty = run_cli(base() + "-p \"\" -n 3");
  EXPECT_EQ(empty.code, 0) << empty.err;
  EXPECT_THAT(empty.err, HasSubstr("the prompt is empty: generating from the BOS token alone"));
  const CliRun dtype = run_cli(base() + "-p x -n 2 --dtype bfloat16");
  EXPECT_EQ(dtype.code, 0) << dtype.err;
  const std::string warning = "--dtype applies to --device cuda";
  const size_t at = dtype.err.find(warning);
  ASSERT_NE(at, std::string::npos) << dtype.err;
  EXPECT_EQ(dtype.err.find(warning, at + 1), std::string::npos);  // once
  const CliRun threads = run_cli("-m " + model_.string() + " --tokenizer " + tok_.string() + " -p x -n 2 -t 4096");
  EXPECT_EQ(threads.code, 0) << threads.err;
  EXPECT_THAT(threads.err, HasSubstr("-t 4096 is more threads than the"));
}

// A child sspan-generate with stdout on a pipe, sent SIGINT once `ready(stdout so far)`.
struct Interrupted {
  int code = -1;
  std::string out, err;
};

Interrupted run_and_interrupt(const std::vector<std::string>& args,
                              const std::function<bool(const std::string& out)>& ready) {
  const auto dir = test::scratch_dir("sigint");
  const std::string err_path = (dir / "stderr").string();
  int pipe_fd[2];
  if (::pipe(pipe_fd) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fd[1], STDOUT_FILENO);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(err, STDERR_FILENO);
    ::close(pipe_fd[0]);
    std::vector<char*> argv{const_cast<char*>(SSPAN_GENERATE_BIN)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(SSPAN_GENERATE_BIN, argv.data());
    ::_exit(127);
  }
  ::close(pipe_fd[1]);
  Interrupted r;
  bool sent = false;
  for (;;) {
    pollfd p{pipe_fd[0], POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      char buf[4096];
      const ssize_t n = ::read(pipe_fd[0], buf, sizeof buf);
      if (n <= 0) break;
      r.out.append(buf, size_t(n));
    }
    if (!sent && ready(r.out)) {
      ::kill(pid, SIGINT);
      sent = true;
    }
  }
  ::close(pipe_fd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream f(err_path);
  r.err.assign(std::istreambuf_iterator<char>(f), {});
  return r;
}

TEST_F(Cli, CtrlCPrintsWhatWasDoneAndExits130) {
  // A model slow enough (54 MB of fp32 weights per token on one thread) that 3,000
  // tokens take many seconds, so Ctrl-C lands long before the end.
  TinyLlamaSpec spec;
  spec.vocab_size = 300;
  spec.hidden_size = 512;
  spec.intermediate_size = 1536;
  spec.num_layers = 4;
  spec.num_heads = 8;
  spec.num_kv_heads = 8;
  spec.max_position_embeddings = 4096;
  const auto model = write_tiny_llama(test::scratch_dir("slow_model"), spec);
  const std::vector<std::string> common = {"-m", model.string(), "--tokenizer", tok_.string(), "-t", "1", "-n", "3000",
                                           "--ignore-eos", "--temp", "1", "-c", "4096"};
  // Text mode: Ctrl-C once the continuation has begun.
  auto args = common;
  args.insert(args.end(), {"-p", "Hello"});
  const Interrupted text = run_and_interrupt(args, [](const std::string& out) { return out.size() > 12; });
  EXPECT_EQ(text.code, 130) << text.err;
  EXPECT_THAT(text.err, HasSubstr("interrupted: load"));
  EXPECT_THAT(text.err, HasSubstr("| stop cancelled |"));
  EXPECT_THAT(text.out, ::testing::StartsWith("Hello"));
  // --json prints nothing before the end: Ctrl-C once the span trace shows generation
  // under way; the partial results of both requests come out, one JSON object each.
  const auto batch = model / "two.jsonl";
  std::ofstream(batch) << "\"Hello\"\n\"world\"\n";
  const auto trace = model / "trace.jsonl", trace0 = model / "trace.0.jsonl";
  auto json_args = common;
  json_args.insert(json_args.end(), {"--batch", batch.string(), "--json", "--span-trace", trace.string()});
  const Interrupted js = run_and_interrupt(json_args, [&](const std::string&) {
    std::error_code ec;
    return std::filesystem::exists(trace0, ec) && std::filesystem::file_size(trace0, ec) > 20000;
  });
  EXPECT_EQ(js.code, 130) << js.err;
  std::istringstream lines(js.out);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["stop"], "cancelled");
    EXPECT_GT(j["ids"].size(), 0u);
    EXPECT_LT(j["ids"].size(), 3000u);
  }
  EXPECT_EQ(n, 2) << js.out;
}

// Another tool's run: exit code and the two streams.
CliRun run_tool(const char* bin, const std::string& args) { return test::run_command(std::string(bin) + " " + args); }

TEST_F(Cli, EvalJsonAndCsvAreTheDocumentAlone) {
  const auto data = model_ / "eval.jsonl";
  std::ofstream(data) << R"({"prompt": "(2 + 3) [0]\n", "completion": "[-1] 5\n"})" << "\n"
                      << R"({"prompt": "(4 * 5) [0]\n", "completion": "[-1] 20\n"})" << "\n";
  const std::string args = "-m " + model_.string() + " --tokenizer " + tok_.string() + " -d " + data.string() +
                           " -n 4 --batch 2 -t 2 --span dense";
  const CliRun js = run_tool(SSPAN_EVAL_BIN, args + " --format json");
  ASSERT_EQ(js.code, 0) << js.err;
  EXPECT_NO_THROW(EXPECT_FALSE(nlohmann::json::parse(js.out).is_discarded())) << js.out;  // the whole of stdout is one document
  EXPECT_THAT(js.err, HasSubstr("test set"));
  const CliRun csv = run_tool(SSPAN_EVAL_BIN, args + " --format csv");
  ASSERT_EQ(csv.code, 0) << csv.err;
  EXPECT_THAT(csv.out, ::testing::StartsWith("bucket,span,n,accuracy"));
}

TEST_F(Cli, EvalSamplesKeepEveryRecordsOutput) {
  const auto data = model_ / "samples_in.jsonl", out = model_ / "samples.jsonl";
  std::ofstream(data) << R"({"prompt": "(2 + 3) [0]\n", "completion": "[-1] 5\n", "answer": "5"})" << "\n"
                      << R"({"prompt": "(4 * 5) [0]\n", "completion": "[-1] 20\n", "answer": "20"})" << "\n";
  const std::string args = "-m " + model_.string() + " --tokenizer " + tok_.string() + " -d " + data.string() +
                           " -n 4 --batch 2 -t 2 --span dense,arith --format csv";
  const CliRun run = run_tool(SSPAN_EVAL_BIN, args + " --samples " + out.string());
  ASSERT_EQ(run.code, 0) << run.err;
  std::ifstream in(out);
  std::map<std::string, int> per_policy;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    ++per_policy[j.at("policy").get<std::string>()];
    const int n = j.at("line").get<int>();
    ASSERT_TRUE(n == 1 || n == 2) << line;
    EXPECT_EQ(j.at("prompt"), n == 1 ? "(2 + 3) [0]\n" : "(4 * 5) [0]\n");
    EXPECT_EQ(j.at("answer"), n == 1 ? "5" : "20");
    EXPECT_LE(j.at("tokens").get<int>(), 4);
    EXPECT_TRUE(j.at("output").is_string() && j.at("correct").is_boolean() && j.at("stop").is_string()) << line;
    const double sparsity = j.at("sparsity").get<double>();
    EXPECT_TRUE(sparsity >= 0.0 && sparsity <= 1.0) << line;
  }
  EXPECT_EQ(per_policy, (std::map<std::string, int>{{"arith", 2}, {"dense", 2}}));
  // A file that cannot be written is an error before any work; --samples is for --data.
  const CliRun bad = run_tool(SSPAN_EVAL_BIN, args + " --samples " + (model_ / "no_dir" / "x.jsonl").string());
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.err, HasSubstr("cannot write --samples file"));
  const CliRun score = run_tool(SSPAN_EVAL_BIN, "-m " + model_.string() + " --tokenizer " + tok_.string() +
                                                    " --score " + data.string() + " --samples " + out.string());
  EXPECT_EQ(score.code, 1);
  EXPECT_THAT(score.err, HasSubstr("--samples applies to --data only"));
}

// The value of an arith chain in the lines layout ("7 [0]\n+ 5 [1]\n...\n- 9 = [3]\n"),
// computed here, independently of the data generator.
int64_t lines_chain_value(const std::string& prompt) {
  std::istringstream in(prompt);
  std::string line;
  std::getline(in, line);
  int64_t v = std::stoll(line);
  while (std::getline(in, line)) {
    const int64_t b = std::stoll(line.substr(2));
    switch (line[0]) {
      case '+': v += b; break;
      case '-': v -= b; break;
      case '*': v *= b; break;
      default: ADD_FAILURE() << "not a chain line: " << line;
    }
  }
  return v;
}

// The README's first command, as written there, on the model and example it names: the
// long expression is solved (the last term is the chain's value), in 20+ lines, with a
// mean sparsity of at least 40%.
TEST(ReadmeFirstCommand, SolvesTheLongExampleSparsely) {
  std::ifstream readme(test::source_dir() / "README.md");
  std::string line, args;
  const std::string head = "scripts/setup.sh && build/bin/sspan-generate ";
  while (std::getline(readme, line))
    if (line.rfind(head, 0) == 0) {
      args = line.substr(head.size());
      break;
    }
  ASSERT_FALSE(args.empty()) << "README.md has no line starting '" << head << "'";
  std::string example;
  for (std::istringstream words(args); words >> line;)
    if (line.rfind("examples/", 0) == 0) example = line;
  ASSERT_FALSE(example.empty()) << "the README's command names no examples/ file: " << args;
  std::ifstream file(test::source_dir() / example);
  const std::string prompt((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  // paths in the command are relative to the source tree
  const CliRun r = test::run_command("cd " + test::source_dir().string() + " && " + SSPAN_GENERATE_BIN + " " + args +
                                     " --json -t 2");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const std::string text = j.at("text");
  EXPECT_EQ(j.at("stop"), "eos") << text;
  std::istringstream out(text);
  std::string term, last;
  int lines = 0;
  for (std::string l; std::getline(out, l);) ++lines;
  for (std::istringstream terms(text); terms >> term;) last = term;
  EXPECT_EQ(last, std::to_string(lines_chain_value(prompt))) << text;
  EXPECT_GE(lines, 20) << text;
  EXPECT_GE(j.at("span").at("mean_sparsity").get<double>(), 0.4);
}

TEST_F(Cli, RandomModelNeedsATokenizerOrSaysItHasNone) {
  const auto dir = test::scratch_dir("random_model");
  const CliRun none = run_tool(SSPAN_RANDOM_MODEL_BIN, "-o " + (dir / "a").string());
  EXPECT_EQ(none.code, 1);
  EXPECT_THAT(none.err, HasSubstr("give --tokenizer FILE"));
  EXPECT_FALSE(std::filesystem::exists(dir / "a" / "config.json"));
  // With one, the engine runs it as it is.
  const CliRun with = run_tool(SSPAN_RANDOM_MODEL_BIN, "-o " + (dir / "b").string() + " --tokenizer " + tok_.string());
  ASSERT_EQ(with.code, 0) << with.err;
  const CliRun gen = run_cli("-m " + (dir / "b").string() + " -p x -n 2 -t 2");
  EXPECT_EQ(gen.code, 0) << gen.err;
  // --no-tokenizer: the weights alone, said so.
  const CliRun weights = run_tool(SSPAN_RANDOM_MODEL_BIN, "-o " + (dir / "c").string() + " --no-tokenizer");
  EXPECT_EQ(weights.code, 0) << weights.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "c" / "config.json"));
}

}  // namespace
}  // namespace sspan
