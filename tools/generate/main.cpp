// sspan-generate: generate from a prompt file (streaming), or score a completion under a
// span policy, with optional span tracing.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "generate/batch_file.h"
#include "generate/trace_writer.h"
#include "io/json_strict.h"
#include "sspan/engine.h"
#include "sspan/error.h"
#include "sspan/log.h"

namespace {

using nlohmann::json;

struct Args {
  std::string model_dir, prompt_file, batch_file, score_file, trace_file, tokenizer;
  std::string device = "cpu", dtype = "float16", kv_dtype = "auto";
  sspan::GenerateOptions gen;
  int max_context = 0, threads = 0;
  bool json_out = false, verbose = false, quiet = false;
};

// Standard input and FIFOs are fine (`-f <(cmd)`), but reading stops at a limit far above
// any context, so `-f /dev/zero` is an error rather than a process that eats all memory.
constexpr size_t kMaxInputBytes = size_t(256) << 20;

std::string read_stream(std::istream& in, const std::string& path, const char* what) {
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, size_t(in.gcount()));
    if (text.size() > kMaxInputBytes)
      throw sspan::Error(fmt::format("{} '{}' is larger than {} MB", what, path, kMaxInputBytes >> 20));
  }
  if (in.bad()) throw sspan::Error(fmt::format("reading {} '{}' failed", what, path));
  return text;
}

std::string read_text(const std::string& path, const char* what) {
  if (path == "-") return read_stream(std::cin, path, what);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw sspan::Error(fmt::format("cannot read {} '{}'", what, path));
  return read_stream(f, path, what);
}

// Prompts and completions are UTF-8 text: refuse other bytes before any work is done,
// naming the file and the offset, rather than tokenize bytes the model never saw as text.
std::string checked_utf8(std::string text, const char* what, const std::string& path) {
  const size_t bad = sspan::io::find_invalid_utf8(text);
  if (bad != std::string::npos)
    throw sspan::Error(fmt::format("{} '{}' is not valid UTF-8 (byte {})", what, path, bad));
  return text;
}

std::string read_utf8_text(const std::string& path, const char* what) {
  return checked_utf8(read_text(path, what), what, path);
}

// One JSON document per line. Invalid UTF-8 (a tokenizer piece that is not text) becomes
// U+FFFD instead of an exception after all the work is done.
std::string json_line(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

json span_json(const sspan::SpanStats& s) {
  return {{"mean_sparsity", s.mean_sparsity},
          {"sparse_tokens", s.sparse_tokens},
          {"dense_tokens", s.dense_tokens},
          {"events", sspan::tools::events_json(s.events)}};
}

void print_load_progress(size_t done, size_t total) {
  if (total == 0) return;
  std::fprintf(stderr, "\rloading weights %3d%%", int(100.0 * double(done) / double(total)));
  if (done >= total) std::fprintf(stderr, "\r%*s\r", 24, "");
  std::fflush(stderr);
}

int run_score(sspan::Engine& engine, const Args& a, const std::string& prompt) {
  const std::string completion = read_utf8_text(a.score_file, "completion file");
  sspan::tools::TraceWriter trace(a.trace_file, 1);
  sspan::GenerateCallbacks cb;
  if (trace.enabled()) cb.on_trace = [&](const sspan::TraceRecord& r) { trace.write(r); };
  const sspan::ScoreResult s = engine.score(prompt, completion, a.gen.span, cb);
  trace.finish({s.span});
  if (a.json_out) {
    json toks = json::array();
    for (const auto& t : s.tokens) toks.push_back({{"id", t.id}, {"piece", t.piece}, {"logprob", t.logprob}});
    json out = {{"prompt", prompt},       {"completion", completion},
                {"prompt_tokens", s.prompt_ids.size()}, {"tokens", toks},
                {"nll", s.nll},           {"perplexity", s.perplexity},
                {"span_policy", a.gen.span.policy}, {"span", span_json(s.span)},
                {"seconds", s.seconds}};
    std::cout << json_line(out);
  } else {
    for (const auto& t : s.tokens) std::cout << fmt::format("{:>8} {:<16} {:>10.4f}\n", t.id, t.piece, t.logprob);
    std::cout << fmt::format("tokens {}  nll {:.4f}  perplexity {:.4f}\n", s.tokens.size(), s.nll, s.perplexity);
  }
  if (!a.quiet)
    std::fprintf(stderr, "score: %zu tokens in %.3f s; span %s: mean sparsity %.3f, sparse %lld, dense %lld\n",
                 s.tokens.size(), s.seconds, a.gen.span.policy.c_str(), s.span.mean_sparsity,
                 (long long)s.span.sparse_tokens, (long long)s.span.dense_tokens);
  return 0;
}

int run_generate(sspan::Engine& engine, const Args& a, const std::vector<std::string>& prompts) {
  sspan::tools::TraceWriter trace(a.trace_file, int(prompts.size()));
  sspan::GenerateCallbacks cb;
  const bool stream = !a.json_out && prompts.size() == 1;
  if (stream) {
    std::cout << prompts[0] << std::flush;
    cb.on_text = [](int, std::string_view text) { std::cout << text << std::flush; };
  }
  if (trace.enabled()) cb.on_trace = [&](const sspan::TraceRecord& r) { trace.write(r); };
  const auto t0 = std::chrono::steady_clock::now();
  const auto results = engine.generate(prompts, a.gen, cb);
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<sspan::SpanStats> stats;
  for (const auto& r : results) stats.push_back(r.span);
  trace.finish(stats);

  size_t prompt_tokens = 0, gen_tokens = 0;
  double prefill_s = 0;
  sspan::SpanStats total;
  double sparsity_weighted = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    prompt_tokens += r.prompt_ids.size();
    gen_tokens += r.ids.size();
    prefill_s += r.stats.prefill_seconds;
    total.sparse_tokens += r.span.sparse_tokens;
    total.dense_tokens += r.span.dense_tokens;
    total.events += r.span.events;
    sparsity_weighted += r.span.mean_sparsity * double(r.span.sparse_tokens + r.span.dense_tokens);
    if (a.json_out) {
      json out = {{"prompt", r.prompt},
                  {"text", r.text},
                  {"ids", r.ids},
                  {"prompt_ids", r.prompt_ids},
                  {"stop", std::string(sspan::stop_reason_name(r.stop))},
                  {"span_policy", a.gen.span.policy},
                  {"span", span_json(r.span)},
                  {"timings",
                   {{"queue_s", r.stats.queue_seconds},
                    {"prefill_s", r.stats.prefill_seconds},
                    {"ttft_s", r.stats.ttft_seconds},
                    {"decode_s", r.stats.decode_seconds},
                    {"prompt_tokens_per_s",
                     r.stats.prefill_seconds > 0 ? double(r.prompt_ids.size()) / r.stats.prefill_seconds : 0},
                    {"decode_tokens_per_s", r.stats.decode_tokens_per_s()}}}};
      std::cout << json_line(out);
    } else if (!stream) {
      std::cout << "=== request " << i << " (" << sspan::stop_reason_name(r.stop) << ")\n" << r.prompt << r.text << "\n";
    }
  }
  if (stream) std::cout << "\n";
  std::cout << std::flush;
  const int64_t processed = total.sparse_tokens + total.dense_tokens;
  total.mean_sparsity = processed ? sparsity_weighted / double(processed) : 0.0;
  if (!a.quiet) {
    const auto& l = engine.load_stats();
    // Decode throughput: generated tokens over the wall time from the first token on.
    double first_token_s = wall_s;
    for (const auto& r : results) first_token_s = std::min(first_token_s, r.stats.ttft_seconds);
    const double decode_s = std::max(wall_s - first_token_s, 1e-9);
    std::fprintf(stderr,
                 "load %.2f s | prompt %zu tokens, %.1f tokens/s | decode %zu tokens, %.1f tokens/s | batch %zu | %s\n",
                 l.seconds, prompt_tokens, prefill_s > 0 ? double(prompt_tokens) / prefill_s : 0.0, gen_tokens,
                 double(gen_tokens) / decode_s, results.size(), l.backend.c_str());
    const auto& e = total.events;
    std::fprintf(stderr,
                 "span %s: mean sparsity %.3f | sparse %lld, dense %lld tokens | events: sparse lines %lld, dense "
                 "fallbacks %lld, unknown anchors %lld, malformed lists %lld, redefined anchors %lld\n",
                 a.gen.span.policy.c_str(), total.mean_sparsity, (long long)total.sparse_tokens,
                 (long long)total.dense_tokens, (long long)e.sparse_lines, (long long)e.dense_fallbacks,
                 (long long)e.unknown_anchors, (long long)e.malformed_lists, (long long)e.redefined_anchors);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sspan-generate: generate text with a LLaMA-family model under a self-selected attention span"};
  Args a;
  app.add_option("-m,--model", a.model_dir,
                 "Model: a directory (config.json, *.safetensors, tokenizer.model or tokenizer.json), a .gguf file, "
                 "or a .safetensors file with config.json beside it")
      ->required()
      ->check(CLI::ExistingPath);
  std::optional<std::string> prompt_text;
  auto* text_opt = app.add_option("-p,--prompt", prompt_text, "Prompt text");
  auto* prompt_opt = app.add_option("-f,--file", a.prompt_file, "Prompt file ('-' reads standard input)");
  auto* batch_opt = app.add_option("--batch", a.batch_file, "JSONL file of prompts decoded together as one batch");
  prompt_opt->excludes(batch_opt);
  text_opt->excludes(prompt_opt)->excludes(batch_opt);
  app.add_option("-n,--n-predict", a.gen.max_new_tokens, "Maximum number of tokens to generate")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--temp", a.gen.sampling.temperature, "Sampling temperature (0 = greedy)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", a.gen.sampling.top_k, "Keep the K most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", a.gen.sampling.top_p, "Nucleus sampling threshold (1 = off)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", a.gen.sampling.seed, "Random seed");
  app.add_option("--max-context", a.max_context, "Context length of the KV cache (default: model's, at most 4096)")
      ->check(CLI::PositiveNumber);
  app.add_option("--device", a.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", a.dtype, "GPU weight/activation type")->check(CLI::IsMember({"float16", "bfloat16"}));
  app.add_option("-t,--threads", a.threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--kv-dtype", a.kv_dtype, "CPU KV cache type (auto: f16 for half-precision checkpoints)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
  app.add_option("--tokenizer", a.tokenizer,
                 "Tokenizer file: SentencePiece or tiktoken tokenizer.model, tokenizer.json, or a .gguf (default: the "
                 "model's own)");
  app.add_option("--span", a.gen.span.policy, "Span policy: dense, arith, summary or a grammar .json file");
  app.add_option("--span-block", a.gen.span.block_size, "Span encoding block size")
      ->check(CLI::IsMember({16, 32, 64, 128, 256}));
  app.add_option("--span-trace", a.trace_file, "Write one JSON object per processed position to this JSONL file");
  app.add_option("--score", a.score_file, "Score this completion file after the prompt (teacher forcing)");
  app.add_flag("--json", a.json_out, "One JSON object per request on stdout");
  app.add_flag("-v,--verbose", a.verbose, "Debug logging");
  app.add_flag("-q,--quiet", a.quiet, "Only errors on stderr");
  CLI11_PARSE(app, argc, argv);

  sspan::set_log_level(a.quiet ? sspan::LogLevel::Error : a.verbose ? sspan::LogLevel::Debug : sspan::LogLevel::Warn);

  try {
    if (!prompt_text && a.prompt_file.empty() && a.batch_file.empty())
      throw sspan::Error("give a prompt with -p TEXT or -f FILE (or -f - for standard input), or prompts with --batch FILE");
    if (!a.score_file.empty() && !a.batch_file.empty()) throw sspan::Error("--score takes one prompt (-f), not --batch");
    std::vector<std::string> prompts =
        prompt_text            ? std::vector<std::string>{checked_utf8(*prompt_text, "prompt", "-p")}
        : a.batch_file.empty() ? std::vector<std::string>{read_utf8_text(a.prompt_file, "prompt file")}
                               : sspan::tools::parse_batch_jsonl(read_text(a.batch_file, "batch file"), a.batch_file);

    sspan::EngineOptions eo;
    eo.model_dir = a.model_dir;
    eo.tokenizer_file = a.tokenizer;
    eo.device = a.device;
    eo.dtype = a.dtype;
    eo.threads = a.threads;
    eo.kv_dtype = a.kv_dtype;
    eo.max_context = a.max_context;
    eo.max_batch = int(prompts.size());
    if (!a.quiet && isatty(STDERR_FILENO)) eo.on_load_progress = print_load_progress;
    sspan::Engine engine(eo);
    return a.score_file.empty() ? run_generate(engine, a, prompts) : run_score(engine, a, prompts[0]);
  } catch (const std::exception& e) {
    std::cout << std::flush;
    std::fprintf(stderr, "sspan-generate: error: %s\n", e.what());
    return 1;
  }
}
