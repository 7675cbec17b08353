// sspan-bench soak: many generate() calls on one engine with the resident set sampled
// after each, to show that memory stays flat over a long session (no growth per token or
// per call). Two phases: long generations (prompts x tokens), then many short calls.
// The figures are process memory (VmRSS), not speed.
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "bench.h"
#include "common/check.h"
#include "sspan/engine.h"

namespace sspan::bench {
namespace {

struct SoakArgs {
  std::string model_dir, tokenizer, device = "cpu";
  int prompts = 16, tokens = 2000, calls = 150, call_tokens = 16, threads = 0, max_context = 0;
  std::string span = "dense";
};

// Resident set of this process in MB, from /proc/self/status.
double vm_rss_mb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  SSPAN_FAIL("no VmRSS in /proc/self/status");
}

// Prompts of different lengths and kinds; the soak cycles through them.
const std::vector<std::string>& sample_prompts() {
  static const std::vector<std::string> p = {
      "Once upon a time",
      "(42 * 56) + (5 * 32) [0]\n",
      "The quick brown fox jumps over the lazy dog.",
      "def fibonacci(n):\n    ",
      "In 1905, Albert Einstein published",
      "Ingredients: two eggs, flour,",
      "Q: What is the capital of France?\nA:",
      "1, 1, 2, 3, 5, 8, 13,",
      "Dear committee members,",
      "The mitochondria is",
      "SELECT name FROM users WHERE",
      "Il était une fois",
      "Summary of the meeting:",
      "((7 - 3) * (2 + 9)) / 4 [0]\n",
      "<html><head><title>",
      "Chapter 1\n\nIt was a bright cold day in April,",
  };
  return p;
}

void run(const SoakArgs& a) {
  EngineOptions eo;
  eo.model_dir = a.model_dir;
  eo.tokenizer_file = a.tokenizer;
  eo.device = a.device;
  eo.threads = a.threads;
  eo.max_context = a.max_context;
  const double rss_before = vm_rss_mb();
  Engine engine(eo);
  const double rss_loaded = vm_rss_mb();
  fmt::print("{}\nbackend: {} | model: {} | context {} | span {}\n", build_description(), engine.load_stats().backend,
             a.model_dir, engine.max_context(), a.span);
  fmt::print("VmRSS before load {:.1f} MB, after load {:.1f} MB\n\n", rss_before, rss_loaded);

  GenerateOptions g;
  g.stop_at_eos = false;
  g.span.policy = a.span;
  std::vector<GenerationResult> kept;  // every result stays alive: ids and text per request
  int64_t tokens = 0;
  double rss_first = 0;
  const auto& prompts = sample_prompts();
  fmt::print("| phase | call | tokens so far | VmRSS MB | since call 1 MB |\n|---|---:|---:|---:|---:|\n");
  auto one_call = [&](const char* phase, int call, int n_tokens, bool print) {
    g.max_new_tokens = n_tokens;
    auto r = engine.generate({prompts[size_t(call) % prompts.size()]}, g);
    tokens += int64_t(r[0].ids.size());
    kept.push_back(std::move(r[0]));
    const double rss = vm_rss_mb();
    if (kept.size() == 1) rss_first = rss;
    if (print) fmt::print("| {} | {} | {} | {:.1f} | {:+.1f} |\n", phase, kept.size(), tokens, rss, rss - rss_first);
  };
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.prompts; ++i) one_call("long", i, a.tokens, true);
  for (int i = 0; i < a.calls; ++i) one_call("short", i, a.call_tokens, (i + 1) % 10 == 0 || i + 1 == a.calls);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double rss_end = vm_rss_mb();
  fmt::print("\n{} generate() calls, {} generated tokens in {:.0f} s; VmRSS {:.1f} MB after call 1, {:.1f} MB at the "
             "end: {:+.2f} MB ({:+.3f} MB per 1,000 tokens)\n",
             kept.size(), tokens, sec, rss_first, rss_end, rss_end - rss_first,
             tokens ? (rss_end - rss_first) * 1000.0 / double(tokens) : 0.0);
}

}  // namespace

void add_soak_bench(CLI::App& app) {
  auto a = std::make_shared<SoakArgs>();
  auto* sub = app.add_subcommand("soak", "Memory over many generate() calls on one engine (VmRSS curve)");
  sub->add_option("-m,--model", a->model_dir, "Model directory")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.model (default: the model directory's)");
  sub->add_option("--prompts", a->prompts, "Long generations, one prompt each")->check(CLI::NonNegativeNumber);
  sub->add_option("--tokens", a->tokens, "Tokens per long generation")->check(CLI::PositiveNumber);
  sub->add_option("--calls", a->calls, "Short generate() calls after the long ones")->check(CLI::NonNegativeNumber);
  sub->add_option("--call-tokens", a->call_tokens, "Tokens per short call")->check(CLI::PositiveNumber);
  sub->add_option("--max-context", a->max_context, "KV-cache context (default: the model's, at most 4096)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--span", a->span, "Span policy: dense, arith, summary or a grammar file");
  sub->add_option("--device", a->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("-t,--threads", a->threads, "CPU threads (0 = all)");
  sub->callback([a] { run(*a); });
}

}  // namespace sspan::bench
