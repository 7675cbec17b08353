// sspan-generate: generate from a prompt file (streaming), or score a completion under a
// span policy, with optional span tracing.
#include <fmt/format.h>
#include <unistd.h>

#include <sched.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <nlohmann/json.hpp>

#include "common/text_input.h"
#include "generate/batch_file.h"
#include "generate/trace_writer.h"
#include "io/json_strict.h"
#include "sspan/engine.h"
#include "sspan/error.h"
#include "sspan/log.h"
#include "sspan/scheduler.h"

namespace {

using nlohmann::json;

struct Args {
  std::string model_dir, prompt_file, batch_file, score_file, trace_file, tokenizer;
  std::string device = "cpu", dtype = "float16", kv_dtype = "auto";
  sspan::GenerateOptions gen;
  int max_context = 0, threads = 0, gpu_layers = -1;
  int64_t seed = -1;
  bool json_out = false, verbose = false, quiet = false, ignore_eos = false;
};

// A range check whose message reads like "-n must be >= 0, got -3".
CLI::Validator at_least(double min, const std::string& flag) {
  return CLI::Validator(
      [min, flag](std::string& value) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(value, v) || v < min) return fmt::format("{} must be >= {}, got {}", flag, min, value);
        return {};
      },
      fmt::format(">= {}", min));
}

CLI::Validator in_range(double lo, double hi, const std::string& flag) {
  return CLI::Validator(
      [lo, hi, flag](std::string& value) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(value, v) || v < lo || v > hi)
          return fmt::format("{} must be in [{}, {}], got {}", flag, lo, hi, value);
        return {};
      },
      fmt::format("in [{}, {}]", lo, hi));
}

// The CPUs this process may run on.
int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

void warn(const Args& a, const std::string& message) {
  if (!a.quiet) std::fprintf(stderr, "sspan-generate: warning: %s\n", message.c_str());
}

// llama.cpp's -ngl N (layers offloaded to the GPU). sspan runs every layer on one device:
// N > 0 is --device cuda, 0 is --device cpu. -ngl is rewritten to --n-gpu-layers before
// parsing, so that it is not read as -n gl.
std::vector<std::string> rewrite_llama_cpp_flags(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (auto& s : args)
    if (s == "-ngl") s = "--n-gpu-layers";
  return args;
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
  const std::string completion = sspan::tools::read_utf8_text(a.score_file, "completion file");
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
  } else if (a.trace_file != "-") {  // else stdout carries the trace
    for (const auto& t : s.tokens) std::cout << fmt::format("{:>8} {:<16} {:>10.4f}\n", t.id, t.piece, t.logprob);
    std::cout << fmt::format("tokens {}  nll {:.4f}  perplexity {:.4f}\n", s.tokens.size(), s.nll, s.perplexity);
  }
  if (!a.quiet)
    std::fprintf(stderr, "score: %zu tokens in %.3f s; span %s: mean sparsity %.3f, sparse %lld, dense %lld\n",
                 s.tokens.size(), s.seconds, a.gen.span.policy.c_str(), s.span.mean_sparsity,
                 (long long)s.span.sparse_tokens, (long long)s.span.dense_tokens);
  return 0;
}

// Ctrl-C: the first asks the run to stop (the requests end as cancelled, their partial
// results and the stats are printed, exit 130); the handler is then the default again,
// so a second Ctrl-C ends the process at once.
std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

void catch_sigint() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
}

// "eos" for one request; "eos 3, length 1" for a batch.
std::string stop_summary(const std::vector<sspan::GenerationResult>& results) {
  if (results.size() == 1) return std::string(sspan::stop_reason_name(results[0].stop));
  std::map<std::string, int> counts;
  for (const auto& r : results) ++counts[std::string(sspan::stop_reason_name(r.stop))];
  std::string s;
  for (const auto& [name, n] : counts) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", name, n);
  return s;
}

int run_generate(sspan::Engine& engine, const Args& a, const std::vector<std::string>& prompts) {
  sspan::tools::TraceWriter trace(a.trace_file, int(prompts.size()));
  // The text streams to stdout unless stdout carries the span trace or the JSON results.
  const bool stream = !a.json_out && prompts.size() == 1 && a.trace_file != "-";
  const bool print_text = !a.json_out && a.trace_file != "-";
  const auto t0 = std::chrono::steady_clock::now();
  // Every request is submitted (tokenized and checked against the context) before
  // anything is printed, so a bad prompt is an error with nothing on stdout.
  sspan::Scheduler scheduler(engine);
  std::vector<sspan::RequestHandle> handles;
  for (size_t i = 0; i < prompts.size(); ++i) {
    sspan::Request r;
    r.prompt = prompts[i];
    r.options = a.gen;
    r.on_token = [stream](const sspan::TokenEvent& e) {
      if (stream && !e.text.empty()) std::cout << e.text << std::flush;
      return !g_interrupted.load();
    };
    if (trace.enabled())
      r.on_trace = [&trace, i](const sspan::TraceRecord& t) {
        sspan::TraceRecord copy = t;
        copy.request = int(i);
        trace.write(copy);
      };
    handles.push_back(scheduler.submit(std::move(r)));
  }
  catch_sigint();
  if (stream) std::cout << prompts[0] << std::flush;
  while (scheduler.step())
    if (g_interrupted.load())  // also stops requests still in their prompt
      for (const auto& h : handles) h.cancel();
  scheduler.run_until_idle();
  const bool interrupted = g_interrupted.load();
  std::vector<sspan::GenerationResult> results;
  for (const auto& h : handles) {
    const sspan::GenerationResult& r = h.wait();
    if (r.stop == sspan::StopReason::Error) throw sspan::Error(r.error);
    results.push_back(r);
  }
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
                  {"seed", a.gen.sampling.seed},
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
    } else if (print_text && !stream) {
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
                 "%sload %.2f s | prompt %zu tokens, %.1f tokens/s | decode %zu tokens, %.1f tokens/s | stop %s | "
                 "batch %zu | seed %llu | %s\n",
                 interrupted ? "interrupted: " : "", l.seconds, prompt_tokens,
                 prefill_s > 0 ? double(prompt_tokens) / prefill_s : 0.0, gen_tokens, double(gen_tokens) / decode_s,
                 stop_summary(results).c_str(), results.size(), (unsigned long long)a.gen.sampling.seed,
                 l.backend.c_str());
    const auto& e = total.events;
    std::fprintf(stderr,
                 "span %s: mean sparsity %.3f | sparse %lld, dense %lld tokens | events: sparse lines %lld, dense "
                 "fallbacks %lld, unknown anchors %lld, malformed lists %lld, redefined anchors %lld\n",
                 a.gen.span.policy.c_str(), total.mean_sparsity, (long long)total.sparse_tokens,
                 (long long)total.dense_tokens, (long long)e.sparse_lines, (long long)e.dense_fallbacks,
                 (long long)e.unknown_anchors, (long long)e.malformed_lists, (long long)e.redefined_anchors);
  }
  return interrupted ? 130 : 0;  // 128 + SIGINT, as a shell reports a process Ctrl-C ended
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sspan-generate: generate text with a LLaMA-family model under a self-selected attention span"};
  app.option_defaults()->always_capture_default();  // --help shows every default
  app.set_version_flag("--version", fmt::format("sspan-generate {} ({})", SSPAN_VERSION,
#ifdef SSPAN_WITH_CUDA
                                                "CPU and CUDA backends"
#else
                                                "CPU backend"
#endif
                                                ));
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
      ->check(at_least(0, "-n"));
  app.add_option("--temp", a.gen.sampling.temperature, "Sampling temperature (0 = greedy)")->check(at_least(0, "--temp"));
  app.add_option("--top-k", a.gen.sampling.top_k, "Keep the K most likely tokens (0 = off)")->check(at_least(0, "--top-k"));
  app.add_option("--top-p", a.gen.sampling.top_p, "Nucleus sampling threshold (1 = off)")->check(in_range(0, 1, "--top-p"));
  app.add_option("--min-p", a.gen.sampling.min_p, "Keep tokens with p >= min_p x the top token's p (0 = off)")
      ->check(in_range(0, 1, "--min-p"));
  app.add_option("--repeat-penalty", a.gen.sampling.repeat_penalty,
                 "llama.cpp's repeat penalty on the last --repeat-last-n tokens (1 = off)")
      ->check(at_least(0, "--repeat-penalty"));
  app.add_option("--repeat-last-n", a.gen.sampling.repeat_last_n, "Tokens the repeat penalty looks at (-1 = all)")
      ->check(at_least(-1, "--repeat-last-n"));
  app.add_option("-s,--seed", a.seed, "Random seed (-1 = draw one; it is printed in the stats line)")
      ->check(at_least(-1, "--seed"));
  app.add_flag("--ignore-eos", a.ignore_eos, "Keep generating past end-of-sequence tokens");
  app.add_option("-c,--ctx-size,--max-context", a.max_context,
                 "Context length of the KV cache (0 = the model's, at most 4096)")
      ->check(at_least(0, "--ctx-size"));
  auto* device_opt = app.add_option("--device", a.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--n-gpu-layers", a.gpu_layers,
                 "-ngl N as llama.cpp spells it; sspan runs every layer on one device, so N > 0 means --device "
                 "cuda and 0 --device cpu (-1: --device decides)")
      ->check(at_least(0, "-ngl"));
  auto* dtype_opt =
      app.add_option("--dtype", a.dtype, "GPU weight/activation type")->check(CLI::IsMember({"float16", "bfloat16"}));
  auto* threads_opt = app.add_option("-t,--threads", a.threads, "CPU threads (0 = all cores)")->check(at_least(0, "-t"));
  app.add_option("--kv-dtype", a.kv_dtype, "CPU KV cache type (auto: f16 for half-precision checkpoints)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
  app.add_option("--tokenizer", a.tokenizer,
                 "Tokenizer file: SentencePiece or tiktoken tokenizer.model, tokenizer.json, or a .gguf (default: the "
                 "model's own)");
  app.add_option("--span", a.gen.span.policy, "Span policy: dense, arith, summary or a grammar .json file");
  app.add_option("--span-block", a.gen.span.block_size, "Span encoding block size")
      ->check(CLI::IsMember({16, 32, 64, 128, 256}));
  app.add_option("--span-trace", a.trace_file,
                 "Write one JSON object per processed position to this JSONL file ('-': standard output, instead of "
                 "the text)");
  app.add_option("--score", a.score_file, "Score this completion file after the prompt (teacher forcing)");
  app.add_flag("--json", a.json_out, "One JSON object per request on stdout");
  app.add_flag("-v,--verbose", a.verbose, "Debug logging");
  app.add_flag("-q,--quiet", a.quiet, "Only errors on stderr");
  const std::vector<std::string> args = rewrite_llama_cpp_flags(argc, argv);
  std::vector<char*> arg_ptrs;
  for (const auto& s : args) arg_ptrs.push_back(const_cast<char*>(s.c_str()));
  try {
    app.parse(int(arg_ptrs.size()), arg_ptrs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  sspan::set_log_level(a.quiet ? sspan::LogLevel::Error : a.verbose ? sspan::LogLevel::Debug : sspan::LogLevel::Warn);

  try {
    if (!prompt_text && a.prompt_file.empty() && a.batch_file.empty())
      throw sspan::Error("give a prompt with -p TEXT or -f FILE (or -f - for standard input), or prompts with --batch FILE");
    if (!a.score_file.empty() && !a.batch_file.empty()) throw sspan::Error("--score takes one prompt (-f), not --batch");
    if (a.trace_file == "-" && a.json_out)
      throw sspan::Error("--span-trace - and --json both want standard output: give the trace a file");
    if (a.trace_file == "-" && !a.batch_file.empty())
      throw sspan::Error("--span-trace - takes one prompt; with --batch give a file (one per request is written)");
    if (a.gpu_layers >= 0) {
      const std::string wanted = a.gpu_layers > 0 ? "cuda" : "cpu";
      if (device_opt->count() > 0 && a.device != wanted)
        throw sspan::Error(fmt::format("-ngl {} asks for --device {} but --device {} was given (sspan runs every layer "
                                       "on one device; use --device)",
                                       a.gpu_layers, wanted, a.device));
      a.device = wanted;
    }
    if (a.device == "cpu" && dtype_opt->count() > 0)
      warn(a, "--dtype applies to --device cuda; on the CPU activations are fp32 and weights keep the checkpoint's "
              "type (--kv-dtype sets the KV cache)");
    if (threads_opt->count() > 0 && a.threads > usable_cpus())
      warn(a, fmt::format("-t {} is more threads than the {} CPUs this process may use", a.threads, usable_cpus()));
    a.gen.stop_at_eos = !a.ignore_eos;
    if (a.seed < 0) {
      std::random_device rd;
      a.gen.sampling.seed = (uint64_t(rd()) << 32 | rd()) >> 1;  // fits the JSON's signed 64 bits
    } else {
      a.gen.sampling.seed = uint64_t(a.seed);
    }
    using namespace sspan::tools;
    std::vector<std::string> prompts =
        prompt_text            ? std::vector<std::string>{checked_utf8(*prompt_text, "prompt", "-p")}
        : a.batch_file.empty() ? std::vector<std::string>{read_utf8_text(a.prompt_file, "prompt file")}
                               : parse_batch_jsonl(read_text(a.batch_file, "batch file"), a.batch_file);

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
    // An empty prompt continues from BOS alone, said so; without BOS the engine refuses it.
    for (size_t i = 0; i < prompts.size(); ++i)
      if (prompts[i].empty() && engine.tokenizer().add_bos())
        warn(a, fmt::format("{} is empty: generating from the BOS token alone",
                            prompts.size() == 1 ? std::string("the prompt") : fmt::format("prompt {}", i)));
    return a.score_file.empty() ? run_generate(engine, a, prompts) : run_score(engine, a, prompts[0]);
  } catch (const std::exception& e) {
    std::cout << std::flush;
    std::fprintf(stderr, "sspan-generate: error: %s\n", e.what());
    return 1;
  }
}
