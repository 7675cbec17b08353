// sspan-bench decode: end-to-end throughput of a checkpoint. Two tests, named as
// llama-bench names them:
//   ppN   prompt processing: one sequence's N-token prompt prefilled (in steps of at most
//         --max-step-rows rows, as the engine does), tokens/s;
//   tg    decode at batch B: B sequences, one token each per step, tokens/s, the bytes each
//         step must read (every weight once in the dtype the backend holds it, the step's
//         embedding rows, the attended K/V rows in the cache dtype) per second, and that as a
//         share of the measured memory bandwidth: host read bandwidth on the CPU,
//         device-to-device copy bandwidth (read + write) on a GPU.
// Every figure is the median over --reps repetitions, with the spread (min, max). Tokens
// per CPU-second (the CPU time of all the process's threads) is printed beside tokens/s: a
// busy machine disturbs it far less than wall time.
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "bench.h"
#include "common/check.h"
#include "model/llama.h"

namespace sspan::bench {
namespace {

struct DecodeArgs {
  std::string model_dir, device = "cpu", dtype = "float16", format = "md", kv_dtype = "auto";
  std::vector<int> batches{1, 8};
  int prompt_tokens = 32, steps = 64, threads = 0, reps = 3;
  int pp = 512, max_step_rows = 512;
};

// Median and range of repeated measurements.
struct Stat {
  double median = 0, min = 0, max = 0;
  static Stat of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    const double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return {med, v.front(), v.back()};
  }
  double spread_pct() const { return median > 0 ? 100.0 * (max - min) / median : 0.0; }
};

struct Row {
  std::string test;  // "pp512" or "tg"
  int batch = 1;
  Stat tokens_per_s;
  double tokens_per_cpu_s = 0;               // median
  double ms_per_step = 0, gbs = 0, pct = 0;  // at the median; gbs/pct: tg only
};

// Wall and CPU seconds of one timed section.
struct Seconds {
  double wall = 0, cpu = 0;
};

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double c0 = cpu_seconds();
  Seconds elapsed() const {
    return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), cpu_seconds() - c0};
  }
};

// A synthetic token id for position i of a prompt (ids spread over the vocabulary).
int32_t prompt_id(const ModelConfig& c, int i) { return i == 0 ? c.bos_token_id : 3 + (i * 7919) % (c.vocab_size - 3); }

void check_finite(std::span<const float> logits, int vocab, const char* what) {
  for (int v = 0; v < vocab; ++v)
    SSPAN_CHECK(std::isfinite(logits[size_t(v)]), "validation: {} logit {} is not finite", what, v);
}

// Prefill `tokens` prompt tokens of slot `slot` in steps of at most `chunk` rows; the
// logits of the last token are computed, as generation needs them.
void prefill(LlamaModel& m, int tokens, int slot, int chunk) {
  const ModelConfig& c = m.config();
  std::vector<int32_t> ids, pos, sl;
  for (int begin = 0; begin < tokens; begin += chunk) {
    const int n = std::min(chunk, tokens - begin);
    ids.resize(size_t(n)), pos.resize(size_t(n)), sl.assign(size_t(n), slot);
    for (int i = 0; i < n; ++i) ids[size_t(i)] = prompt_id(c, begin + i), pos[size_t(i)] = begin + i;
    const std::vector<RowMode> dense(size_t(n), RowMode::Dense);
    const int32_t last = n - 1;
    m.forward({ids, pos, sl, dense, nullptr, begin + n == tokens ? std::span(&last, 1) : std::span<const int32_t>()});
  }
}

// Time to prefill one a.pp-token prompt.
Seconds time_pp(LlamaModel& m, const DecodeArgs& a, std::vector<float>& logits) {
  const Timer timer;
  prefill(m, a.pp, 0, a.max_step_rows);
  m.read_logits(logits, 1);
  const Seconds sec = timer.elapsed();
  check_finite(logits, m.config().vocab_size, "prompt-processing");
  return sec;
}

// Time of a.steps decode steps of `batch` sequences (after an untimed warm-up step).
Seconds time_tg(LlamaModel& m, const DecodeArgs& a, int batch, std::vector<float>& logits) {
  const ModelConfig& c = m.config();
  for (int s = 0; s < batch; ++s) prefill(m, a.prompt_tokens, s, a.max_step_rows);
  m.read_logits(logits, 1);
  check_finite(logits, c.vocab_size, "prefill");

  const size_t nb = size_t(batch);
  std::vector<int32_t> tok(nb), p(nb), sl(nb), rows(nb);
  const std::vector<RowMode> dense(nb, RowMode::Dense);  // dense decode
  std::iota(sl.begin(), sl.end(), 0);
  std::iota(rows.begin(), rows.end(), 0);
  auto step = [&](int k) {
    for (int s = 0; s < batch; ++s) {
      tok[size_t(s)] = 3 + (k * 31 + s) % (c.vocab_size - 3);
      p[size_t(s)] = a.prompt_tokens + k;
    }
    m.forward({tok, p, sl, dense, nullptr, rows});
    m.read_logits(logits, batch);
  };
  step(0);  // warm-up
  const Timer timer;
  for (int k = 1; k <= a.steps; ++k) step(k);
  const Seconds sec = timer.elapsed();
  check_finite(logits, c.vocab_size, "decode");
  return sec;
}

// kv_bytes_per_pos: bytes of K and V one position of one sequence holds over all layers.
std::vector<Row> run_all(LlamaModel& m, const DecodeArgs& a, double kv_bytes_per_pos, double bw) {
  const ModelConfig& c = m.config();
  std::vector<float> logits(size_t(*std::max_element(a.batches.begin(), a.batches.end())) * size_t(c.vocab_size));
  // Bytes a decode step must read: weights once, plus K and V of every attended position.
  const double mean_ctx = a.prompt_tokens + 1 + a.steps / 2.0;

  std::vector<Row> rows;
  // Repetitions alternate over the tests, so a slow spell of the machine hits every test.
  std::vector<std::vector<Seconds>> secs(a.batches.size() + 1);
  for (int rep = 0; rep < a.reps; ++rep) {
    if (a.pp > 0) secs[0].push_back(time_pp(m, a, logits));
    for (size_t b = 0; b < a.batches.size(); ++b) secs[b + 1].push_back(time_tg(m, a, a.batches[b], logits));
  }
  auto row = [](std::string test, int batch, const std::vector<Seconds>& s, double tokens) {
    std::vector<double> wall, cpu;
    for (const Seconds& x : s) wall.push_back(tokens / x.wall), cpu.push_back(tokens / x.cpu);
    return Row{std::move(test), batch, Stat::of(wall), Stat::of(cpu).median};
  };
  if (a.pp > 0) {
    Row r = row(fmt::format("pp{}", a.pp), 1, secs[0], a.pp);
    r.ms_per_step = 1e3 * a.pp / r.tokens_per_s.median;
    rows.push_back(r);
  }
  for (size_t b = 0; b < a.batches.size(); ++b) {
    const int batch = a.batches[b];
    Row r = row("tg", batch, secs[b + 1], double(batch) * a.steps);
    const double step_s = batch / r.tokens_per_s.median;
    const double kv_bytes = kv_bytes_per_pos * mean_ctx * batch;
    r.ms_per_step = step_s * 1e3;
    r.gbs = (double(m.step_weight_bytes(batch, batch)) + kv_bytes) / step_s / 1e9;
    r.pct = bw > 0 ? 100.0 * r.gbs / bw : 0.0;
    rows.push_back(r);
  }
  return rows;
}

void print(const DecodeArgs& a, const std::string& header, double bw, const std::vector<Row>& rows) {
  if (a.format == "json") {
    nlohmann::json j = {{"header", header},    {"bandwidth_gbs", bw},       {"prompt_tokens", a.prompt_tokens},
                        {"steps", a.steps},    {"reps", a.reps},            {"rows", nlohmann::json::array()}};
    for (const Row& r : rows)
      j["rows"].push_back({{"test", r.test},
                           {"batch", r.batch},
                           {"tokens_per_s", r.tokens_per_s.median},
                           {"tokens_per_s_min", r.tokens_per_s.min},
                           {"tokens_per_s_max", r.tokens_per_s.max},
                           {"tokens_per_cpu_s", r.tokens_per_cpu_s},
                           {"ms_per_step", r.ms_per_step},
                           {"gbs", r.gbs},
                           {"pct_bandwidth", r.pct}});
    fmt::print("{}\n", j.dump(2));
    return;
  }
  const bool csv = a.format == "csv";
  if (csv) {
    std::string commented = "# " + header;
    for (size_t i = 0; (i = commented.find('\n', i)) != std::string::npos; i += 3) commented.replace(i, 1, "\n# ");
    fmt::print("{}\ntest,batch,tokens_per_s,tokens_per_s_min,tokens_per_s_max,tokens_per_cpu_s,ms_per_step,gbs,"
               "pct_bandwidth\n",
               commented);
  } else {
    fmt::print("{}\n\n| test | batch | tokens/s | spread (min–max) | tokens per CPU-s | ms/step | GB/s read "
               "| % of bandwidth |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
               header);
  }
  for (const Row& r : rows) {
    const Stat& t = r.tokens_per_s;
    if (csv) {
      fmt::print("{},{},{:.2f},{:.2f},{:.2f},{:.2f},{:.3f},{:.3f},{:.2f}\n", r.test, r.batch, t.median, t.min, t.max,
                 r.tokens_per_cpu_s, r.ms_per_step, r.gbs, r.pct);
    } else if (r.gbs > 0) {
      fmt::print("| {} | {} | {:.1f} | ±{:.1f}% ({:.1f}–{:.1f}) | {:.1f} | {:.2f} | {:.2f} | {:.1f} |\n", r.test,
                 r.batch, t.median, t.spread_pct() / 2, t.min, t.max, r.tokens_per_cpu_s, r.ms_per_step, r.gbs, r.pct);
    } else {
      fmt::print("| {} | {} | {:.1f} | ±{:.1f}% ({:.1f}–{:.1f}) | {:.1f} | {:.2f} | | |\n", r.test, r.batch, t.median,
                 t.spread_pct() / 2, t.min, t.max, r.tokens_per_cpu_s, r.ms_per_step);
    }
  }
}

void run(const DecodeArgs& a) {
  const auto dir = std::filesystem::path(a.model_dir);
  const ModelConfig c = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  std::unique_ptr<Backend> be;
  double bw = 0;
  if (a.device == "cpu") {
    be = make_cpu_backend(a.threads, cpu_kv_dtype(a.kv_dtype, ckpt));
    bw = host_read_bandwidth_gbs(a.threads);
  } else {
#ifdef SSPAN_WITH_CUDA
    DType dt;
    SSPAN_CHECK(parse_dtype(a.dtype, &dt) && dt != DType::F32, "--dtype must be float16 or bfloat16");
    be = make_cuda_backend(dt, 0);
    bw = device_copy_bandwidth_gbs(0);
#else
    SSPAN_FAIL("this build has no CUDA backend");
#endif
  }
  LlamaModel m(c, ckpt, *be);
  const int max_batch = *std::max_element(a.batches.begin(), a.batches.end());
  const int max_rows = std::max(std::min(a.max_step_rows, std::max(a.pp, a.prompt_tokens)), max_batch);
  const int max_ctx = std::max(a.pp, a.prompt_tokens + a.steps + 2);
  SSPAN_CHECK(max_ctx <= c.max_position_embeddings, "--pp {} / --prompt-tokens + --steps exceed the model's {} positions",
              a.pp, c.max_position_embeddings);
  m.allocate(max_rows, max_batch, max_batch, max_ctx);
  const double kv_bytes_per_pos = double(be->kv_cache_bytes()) / (double(max_batch) * max_ctx);
  std::string header = fmt::format("{}\nbackend: {} | model: {} ({:.1f} M parameters, {:.1f} MB of weights as stored, {:.1f} MB as held)",
                                   build_description(), be->name(), a.model_dir, c.num_parameters() / 1e6,
                                   m.weight_bytes() / 1e6, m.step_weight_bytes(0, 1) / 1e6);
  if (bw > 0)
    header += fmt::format(" | measured {} {:.1f} GB/s",
                          a.device == "cpu" ? "memory read bandwidth" : "device copy bandwidth (read + write)", bw);
  header += fmt::format("\ntg: prompt {} tokens, {} decode steps | median of {} reps", a.prompt_tokens, a.steps, a.reps);
  if (a.format == "md") std::fprintf(stderr, "timing...\n");
  print(a, header, bw, run_all(m, a, kv_bytes_per_pos, bw));
}

}  // namespace

void add_decode_bench(CLI::App& app) {
  auto a = std::make_shared<DecodeArgs>();
  auto* sub = app.add_subcommand("decode", "End-to-end prompt processing and decode throughput");
  sub->add_option("-m,--model", a->model_dir, "Model directory")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--batch", a->batches, "Decode batch sizes")->delimiter(',')->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--pp", a->pp, "Prompt-processing test length in tokens (0: skip)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--max-step-rows", a->max_step_rows, "Prompt tokens per prefill step")
      ->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--prompt-tokens", a->prompt_tokens, "Prompt length before the decode test")
      ->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--steps", a->steps, "Timed decode steps")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--reps", a->reps, "Repetitions (median and spread reported)")->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--format", a->format, "md, csv or json")->check(CLI::IsMember({"md", "csv", "json"}))
      ->capture_default_str();
  sub->add_option("--device", a->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  sub->add_option("--dtype", a->dtype, "GPU dtype")->check(CLI::IsMember({"float16", "bfloat16"}))->capture_default_str();
  sub->add_option("-t,--threads", a->threads, "CPU threads (0: the default)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--kv-dtype", a->kv_dtype, "CPU KV cache type (auto: f16 for half-precision checkpoints)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}))->capture_default_str();
  sub->callback([a] { run(*a); });
}

}  // namespace sspan::bench
