// sspan-bench serve: what continuous batching buys a server. C concurrent clients (closed
// loop: each sends its next request when the last one is answered) against one
// scheduler on a background thread, as sspan-server runs it, with requests of mixed
// lengths; continuous batching against static batching (a batch is admitted only when the
// previous one has fully finished). Reports generated tokens/s over the wall time and
// time to first token (mean, p50, p90) per client count.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "bench.h"
#include "common/check.h"
#include "sspan/engine.h"
#include "sspan/error.h"
#include "sspan/log.h"
#include "sspan/scheduler.h"

namespace sspan::bench {
namespace {

struct ServeArgs {
  std::string model_dir, device = "cpu", dtype = "float16", span = "dense", tokenizer;
  std::vector<int> clients{1, 8, 32, 64};
  int parallel = 16, requests_per_client = 4, min_tokens = 16, max_tokens = 128, threads = 0, max_context = 512;
  uint64_t seed = 1;
};

// Mixed prompts and lengths, the same list for every mode and client count.
struct Job {
  std::string prompt;
  int max_tokens;
};

std::vector<Job> jobs(const ServeArgs& a, int n) {
  static const char* prompts[] = {"(1 / (7 - 6)) - (2 / (9 - 3)) [0]\n", "(3 + 4) * 2 [0]\n", "12 - (5 * 2) [0]\n",
                                  "((8 - 1) * (2 + 3)) + 7 [0]\n", "(15 - 3) / (1 + 1) [0]\n"};
  std::vector<Job> out;
  uint64_t x = a.seed * 0x9E3779B97F4A7C15ull + 1;
  for (int i = 0; i < n; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift: lengths spread over [min, max]
    const int span = a.max_tokens - a.min_tokens + 1;
    out.push_back({prompts[size_t(i) % 5], a.min_tokens + int(x % uint64_t(span))});
  }
  return out;
}

struct Result {
  double tokens_per_s, ttft_mean, ttft_p50, ttft_p90, wall;
  int64_t tokens;
};

Result run_clients(Engine& engine, const ServeArgs& a, int clients, bool continuous) {
  Scheduler scheduler(engine, {.max_queued = 4096, .static_batching = !continuous});
  scheduler.start();
  const int n = clients * a.requests_per_client;
  const std::vector<Job> work = jobs(a, n);
  std::mutex m;
  size_t next = 0;
  std::vector<double> ttft;
  int64_t tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  std::exception_ptr failure;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      while (true) try {
        size_t i;
        {
          std::lock_guard<std::mutex> lock(m);
          if (next == work.size()) return;
          i = next++;
        }
        Request r;
        r.prompt = work[i].prompt;
        r.options.max_new_tokens = work[i].max_tokens;
        r.options.stop_at_eos = false;  // lengths as drawn
        r.options.span.policy = a.span;
        const GenerationResult& g = scheduler.submit(std::move(r)).wait();
        if (g.stop == StopReason::Error) throw Error(g.error);
        std::lock_guard<std::mutex> lock(m);
        ttft.push_back(g.stats.ttft_seconds);
        tokens += int64_t(g.ids.size());
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        failure = std::current_exception();
        next = work.size();  // the other clients stop too
        return;
      }
    });
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  scheduler.stop();
  std::sort(ttft.begin(), ttft.end());
  double mean = 0;
  for (double v : ttft) mean += v;
  mean /= double(ttft.size());
  auto pct = [&](double q) { return ttft[std::min(ttft.size() - 1, size_t(q * double(ttft.size())))]; };
  return {double(tokens) / wall, mean, pct(0.5), pct(0.9), wall, tokens};
}

void run(const ServeArgs& a) {
  SSPAN_CHECK(a.min_tokens >= 1 && a.max_tokens >= a.min_tokens, "--min-tokens/--max-tokens: need 1 <= min <= max");
  EngineOptions eo;
  eo.model_dir = a.model_dir;
  eo.tokenizer_file = a.tokenizer;
  eo.device = a.device;
  eo.dtype = a.dtype;
  eo.threads = a.threads;
  eo.max_batch = a.parallel;
  eo.max_context = a.max_context;
  Engine engine(eo);
  SpanPolicy::parse(a.span);
  fmt::print("{}\nbackend: {} | model: {} | {} slots | span {} | {} requests per client, {}-{} generated tokens each\n\n",
             build_description(), engine.load_stats().backend, a.model_dir, a.parallel, a.span, a.requests_per_client,
             a.min_tokens, a.max_tokens);
  fmt::print("| clients | batching | tokens/s | TTFT mean ms | TTFT p50 ms | TTFT p90 ms | wall s |\n"
             "|---:|---|---:|---:|---:|---:|---:|\n");
  for (int c : a.clients) {
    SSPAN_CHECK(c >= 1, "--clients: counts must be >= 1, got {}", c);
    for (const bool continuous : {true, false}) {
      const Result r = run_clients(engine, a, c, continuous);
      fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.2f} |\n", c, continuous ? "continuous" : "static",
                 r.tokens_per_s, 1e3 * r.ttft_mean, 1e3 * r.ttft_p50, 1e3 * r.ttft_p90, r.wall);
      std::fflush(stdout);
    }
  }
}

}  // namespace

void add_serve_bench(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  auto* sub = app.add_subcommand("serve", "Throughput and time to first token under concurrent clients: continuous "
                                          "against static batching");
  sub->add_option("-m,--model", a->model_dir, "Model directory")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--clients", a->clients, "Concurrent client counts")->delimiter(',')->check(CLI::PositiveNumber);
  sub->add_option("--parallel", a->parallel, "KV slots")->check(CLI::PositiveNumber);
  sub->add_option("--requests-per-client", a->requests_per_client, "Requests each client sends")
      ->check(CLI::PositiveNumber);
  sub->add_option("--min-tokens", a->min_tokens, "Shortest generation")->check(CLI::PositiveNumber);
  sub->add_option("--max-tokens", a->max_tokens, "Longest generation")->check(CLI::PositiveNumber);
  sub->add_option("--span", a->span, "Span policy of every request");
  sub->add_option("--max-context", a->max_context, "Context per slot")->check(CLI::PositiveNumber);
  sub->add_option("--device", a->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--dtype", a->dtype, "GPU dtype")->check(CLI::IsMember({"float16", "bfloat16"}));
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.model (default: the model directory's)");
  sub->add_option("-t,--threads", a->threads, "CPU threads (0 = all)")->check(CLI::NonNegativeNumber);
  sub->callback([a] {
    set_log_level(LogLevel::Warn);
    run(*a);
  });
}

}  // namespace sspan::bench
