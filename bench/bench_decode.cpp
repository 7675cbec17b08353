// sspan-bench decode: end-to-end throughput of a checkpoint. Two tests, named as
// llama-bench names them:
//   ppN   prompt processing: one sequence's N-token prompt prefilled (in steps of at most
//         --max-step-rows rows, as the engine does), tokens/s;
//   tg    decode at batch B: B sequences, one token each per step, tokens/s, the bytes each
//         step must read (every weight once in the dtype the backend holds it, the step's
//         embedding rows, the attended K/V rows in the cache dtype) per second, and that as a
//         share of the measured memory bandwidth: host read bandwidth on the CPU,
//         device-to-device copy bandwidth (read + write) on a GPU. With --span, once per
//         span policy: every row's span comes from the policy's tracker, pushed the text of
//         the row's token, as in generation (the step runner, src/runtime/step_runner.h,
//         is the one place steps are assembled); the mean sparsity and the ratio to dense
//         are printed beside it. The tokens are synthetic (ids spread over the vocabulary),
//         so a grammar policy finds few anchors in them: position-based policies (window,
//         recycled) show their steady-state cost here, `sspan-bench e2e` replays real
//         self-selected spans.
// Every figure is the median over --reps repetitions, with the spread (min, max). Tokens
// per CPU-second (the CPU time of all the process's threads) is printed beside tokens/s: a
// busy machine disturbs it far less than wall time.
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "bench.h"
#include "common/check.h"
#include "model/llama.h"
#include "runtime/step_runner.h"
#include "sspan/tokenizer.h"

namespace sspan::bench {
namespace {

struct DecodeArgs {
  std::string model_dir, device = "cpu", dtype = "float16", format = "md", kv_dtype = "auto";
  std::vector<int> batches{1, 8};
  std::vector<std::string> spans{"dense"};  // span policy specs (SpanPolicy::split_list)
  int prompt_tokens = 32, steps = 64, threads = 0, reps = 3;
  int pp = 512, max_step_rows = 512, span_block = 64;
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
  std::string span = "dense";
  int batch = 1;
  Stat tokens_per_s;
  double tokens_per_cpu_s = 0;               // median
  double ms_per_step = 0, gbs = 0, pct = 0;  // at the median; gbs/pct: tg only
  double sparsity = 0;                       // tg: mean 1 - |S_t| / (t + 1) over the timed rows
  double vs_dense = 0;                       // tg: tokens/s against dense at the same batch (0: no dense row)
};

// Wall and CPU seconds of one timed section, and (tg) what its rows attended.
struct Seconds {
  double wall = 0, cpu = 0;
  double attended = 0, sparsity = 0;  // mean |S_t| and mean sparsity per timed row
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

// A synthetic token id for position i of a prompt (ids spread over the tokenizer's
// vocabulary, which the step runner checks every id against).
int32_t prompt_id(const ModelConfig& c, int vocab, int i) { return i == 0 ? c.bos_token_id : 3 + (i * 7919) % (vocab - 3); }

void check_finite(std::span<const float> logits, int vocab, const char* what) {
  for (int v = 0; v < vocab; ++v)
    SSPAN_CHECK(std::isfinite(logits[size_t(v)]), "validation: {} logit {} is not finite", what, v);
}

// The model, its step runner and the tokenizer whose texts the span trackers read.
struct Bench {
  LlamaModel& model;
  StepRunner& steps;
  int vocab;  // ids a row may carry: the tokenizer's, or the model's without one
};

// Prefill `tokens` prompt tokens of slot `slot` (cleared first) in steps of at most
// `chunk` rows, each row pushed into `tracker` when given; the logits of the last token
// are computed and checked, as generation needs them.
void prefill(Bench& b, int tokens, int slot, int chunk, SpanTracker* tracker) {
  const ModelConfig& c = b.model.config();
  b.steps.clear(slot);
  std::vector<StepRow> rows;
  for (int begin = 0; begin < tokens; begin += chunk) {
    const int n = std::min(chunk, tokens - begin);
    rows.clear();
    for (int i = begin; i < begin + n; ++i)
      rows.push_back({prompt_id(c, b.vocab, i), i, slot, i == tokens - 1,
                      tracker ? RowSpan::push(*tracker, /*in_prompt=*/true) : RowSpan::dense()});
    b.steps.run(rows);
  }
  check_finite(b.steps.logits(0), c.vocab_size, "prompt-processing");
}

// Time to prefill one a.pp-token prompt.
Seconds time_pp(Bench& b, const DecodeArgs& a) {
  const Timer timer;
  prefill(b, a.pp, 0, a.max_step_rows, nullptr);
  return timer.elapsed();
}

// Time of a.steps decode steps of `batch` sequences under `policy` (after an untimed
// warm-up step), and the mean attended count and sparsity of the timed rows.
Seconds time_tg(Bench& b, const DecodeArgs& a, int batch, const SpanPolicy& policy) {
  const ModelConfig& c = b.model.config();
  std::vector<std::unique_ptr<SpanTracker>> trackers;
  for (int s = 0; s < batch; ++s) {
    trackers.push_back(policy.start());
    prefill(b, a.prompt_tokens, s, a.max_step_rows, trackers.back().get());
  }
  std::vector<StepRow> rows(static_cast<size_t>(batch));
  double attended = 0, sparsity = 0;
  auto step = [&](int k) {
    for (int s = 0; s < batch; ++s)
      rows[size_t(s)] = {3 + (k * 31 + s) % (b.vocab - 3), a.prompt_tokens + k, s, true,
                         RowSpan::push(*trackers[size_t(s)], /*in_prompt=*/false)};
    b.steps.run(rows);
    (void)b.steps.logits(0);  // the step's logits come back to the host, as in generation
    for (const auto& t : trackers) attended += double(t->last_count()), sparsity += t->last_sparsity();
  };
  step(0);  // warm-up
  attended = sparsity = 0;
  const Timer timer;
  for (int k = 1; k <= a.steps; ++k) step(k);
  Seconds sec = timer.elapsed();
  for (int s = 0; s < batch; ++s) check_finite(b.steps.logits(s), c.vocab_size, "decode");
  const double n = double(batch) * a.steps;
  sec.attended = attended / n, sec.sparsity = sparsity / n;
  return sec;
}

// kv_bytes_per_pos: bytes of K and V one position of one sequence holds over all layers.
std::vector<Row> run_all(Bench& b, const DecodeArgs& a, const std::vector<std::shared_ptr<const SpanPolicy>>& policies,
                         double kv_bytes_per_pos, double bw) {
  // Repetitions alternate over the tests, so a slow spell of the machine hits every test.
  const size_t tests = a.batches.size() * policies.size();
  std::vector<Seconds> pp;
  std::vector<std::vector<Seconds>> tg(tests);
  for (int rep = 0; rep < a.reps; ++rep) {
    if (a.pp > 0) pp.push_back(time_pp(b, a));
    for (size_t i = 0; i < tests; ++i)
      tg[i].push_back(time_tg(b, a, a.batches[i / policies.size()], *policies[i % policies.size()]));
  }
  auto row = [](std::string test, int batch, const std::vector<Seconds>& s, double tokens) {
    std::vector<double> wall, cpu;
    for (const Seconds& x : s) wall.push_back(tokens / x.wall), cpu.push_back(tokens / x.cpu);
    return Row{std::move(test), "dense", batch, Stat::of(wall), Stat::of(cpu).median};
  };
  std::vector<Row> rows;
  if (a.pp > 0) {
    Row r = row(fmt::format("pp{}", a.pp), 1, pp, a.pp);
    r.ms_per_step = 1e3 * a.pp / r.tokens_per_s.median;
    rows.push_back(r);
  }
  for (size_t i = 0; i < tests; ++i) {
    const int batch = a.batches[i / policies.size()];
    Row r = row("tg", batch, tg[i], double(batch) * a.steps);
    r.span = a.spans[i % policies.size()];
    // Bytes a decode step must read: weights once, plus K and V of every attended position.
    double attended = 0;
    for (const Seconds& x : tg[i]) attended += x.attended, r.sparsity += x.sparsity;
    attended /= double(tg[i].size()), r.sparsity /= double(tg[i].size());
    const double step_s = batch / r.tokens_per_s.median;
    r.ms_per_step = step_s * 1e3;
    r.gbs = (double(b.model.step_weight_bytes(batch, batch)) + kv_bytes_per_pos * attended * batch) / step_s / 1e9;
    r.pct = bw > 0 ? 100.0 * r.gbs / bw : 0.0;
    rows.push_back(r);
  }
  // Each span row against the dense row of its batch.
  for (Row& r : rows)
    for (const Row& d : rows)
      if (r.test == "tg" && d.test == "tg" && d.batch == r.batch && d.span == "dense")
        r.vs_dense = r.tokens_per_s.median / d.tokens_per_s.median;
  return rows;
}

void print(const DecodeArgs& a, const std::string& header, double bw, const std::vector<Row>& rows) {
  if (a.format == "json") {
    nlohmann::json j = {{"header", header},    {"bandwidth_gbs", bw},       {"prompt_tokens", a.prompt_tokens},
                        {"steps", a.steps},    {"reps", a.reps},            {"rows", nlohmann::json::array()}};
    for (const Row& r : rows)
      j["rows"].push_back({{"test", r.test},
                           {"span", r.span},
                           {"batch", r.batch},
                           {"tokens_per_s", r.tokens_per_s.median},
                           {"tokens_per_s_min", r.tokens_per_s.min},
                           {"tokens_per_s_max", r.tokens_per_s.max},
                           {"tokens_per_cpu_s", r.tokens_per_cpu_s},
                           {"ms_per_step", r.ms_per_step},
                           {"gbs", r.gbs},
                           {"pct_bandwidth", r.pct},
                           {"mean_sparsity", r.sparsity},
                           {"vs_dense", r.vs_dense}});
    fmt::print("{}\n", j.dump(2));
    return;
  }
  const bool csv = a.format == "csv";
  if (csv) {
    std::string commented = "# " + header;
    for (size_t i = 0; (i = commented.find('\n', i)) != std::string::npos; i += 3) commented.replace(i, 1, "\n# ");
    fmt::print("{}\ntest,span,batch,tokens_per_s,tokens_per_s_min,tokens_per_s_max,tokens_per_cpu_s,ms_per_step,gbs,"
               "pct_bandwidth,mean_sparsity,vs_dense\n",
               commented);
  } else {
    fmt::print("{}\n\n| test | span | batch | tokens/s | spread (min–max) | tokens per CPU-s | ms/step | GB/s read "
               "| % of bandwidth | mean sparsity | vs dense |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
               header);
  }
  for (const Row& r : rows) {
    const Stat& t = r.tokens_per_s;
    if (csv) {
      fmt::print("{},{},{},{:.2f},{:.2f},{:.2f},{:.2f},{:.3f},{:.3f},{:.2f},{:.4f},{:.4f}\n", r.test, r.span, r.batch,
                 t.median, t.min, t.max, r.tokens_per_cpu_s, r.ms_per_step, r.gbs, r.pct, r.sparsity, r.vs_dense);
      continue;
    }
    const bool tg = r.test == "tg";
    fmt::print("| {} | {} | {} | {:.1f} | ±{:.1f}% ({:.1f}–{:.1f}) | {:.1f} | {:.2f} | {} | {} | {} | {} |\n", r.test,
               r.span, r.batch, t.median, t.spread_pct() / 2, t.min, t.max, r.tokens_per_cpu_s, r.ms_per_step,
               tg ? fmt::format("{:.2f}", r.gbs) : "", tg ? fmt::format("{:.1f}", r.pct) : "",
               tg ? fmt::format("{:.3f}", r.sparsity) : "", r.vs_dense > 0 ? fmt::format("{:.2f}x", r.vs_dense) : "");
  }
}

void run(DecodeArgs a) {
  // The policies first: a misspelt one is an error before anything is loaded.
  a.spans = SpanPolicy::split_list(fmt::format("{}", fmt::join(a.spans, ",")));
  std::vector<std::shared_ptr<const SpanPolicy>> policies;
  for (const std::string& spec : a.spans) policies.push_back(SpanPolicy::parse(spec, a.span_block));
  const auto dir = std::filesystem::path(a.model_dir);
  const ModelConfig c = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  // The tokenizer gives the text the span trackers read; a checkpoint of weights alone
  // (sspan-random-model --no-tokenizer) runs the policies that read none.
  std::optional<Tokenizer> tok;
  if (std::filesystem::exists(dir / "tokenizer.model") || std::filesystem::exists(dir / "tokenizer.json"))
    tok = Tokenizer::for_model_dir(dir);
  else
    for (const auto& p : policies)
      SSPAN_CHECK(p->name() == "dense" || p->name() == "window" || p->name() == "recycled",
                  "--span {} reads the text of the tokens, but {} holds no tokenizer", p->name(), a.model_dir);
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
  for (const auto& p : policies)
    SSPAN_CHECK(!p->needs_attention_record() || be->records_attention(),
                "--span {} learns from the attention, which the {} backend does not record", p->name(), be->name());
  LlamaModel m(c, ckpt, *be);
  const int max_batch = *std::max_element(a.batches.begin(), a.batches.end());
  const int max_rows = std::max(std::min(a.max_step_rows, std::max(a.pp, a.prompt_tokens)), max_batch);
  const int max_ctx = std::max(a.pp, a.prompt_tokens + a.steps + 2);
  SSPAN_CHECK(max_ctx <= c.max_position_embeddings, "--pp {} / --prompt-tokens + --steps exceed the model's {} positions",
              a.pp, c.max_position_embeddings);
  m.allocate(max_rows, max_rows, max_batch, max_ctx);
  StepRunner steps(m, tok ? &*tok : nullptr, c.bos_token_id, max_batch, max_ctx, max_rows);
  Bench b{m, steps, tok ? tok->vocab_size() : c.vocab_size};
  const double kv_bytes_per_pos = double(be->kv_cache_bytes()) / (double(max_batch) * max_ctx);
  std::string header = fmt::format("{}\nbackend: {} | model: {} ({:.1f} M parameters, {:.1f} MB of weights as stored, {:.1f} MB as held)",
                                   build_description(), be->name(), a.model_dir, c.num_parameters() / 1e6,
                                   m.weight_bytes() / 1e6, m.step_weight_bytes(0, 1) / 1e6);
  if (bw > 0)
    header += fmt::format(" | measured {} {:.1f} GB/s",
                          a.device == "cpu" ? "memory read bandwidth" : "device copy bandwidth (read + write)", bw);
  header += fmt::format("\ntg: prompt {} tokens, {} decode steps | median of {} reps", a.prompt_tokens, a.steps, a.reps);
  if (a.format == "md") std::fprintf(stderr, "timing...\n");
  print(a, header, bw, run_all(b, a, policies, kv_bytes_per_pos, bw));
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
  sub->add_option("--span", a->spans,
                  "Span policies of the tg test, side by side (comma-separated: dense,window:recent=256,...)")
      ->delimiter(',')->capture_default_str();
  sub->add_option("--span-block", a->span_block, "Span encoding block size")
      ->check(CLI::IsMember({16, 32, 64, 128, 256}))->capture_default_str();
  sub->add_option("--kv-dtype", a->kv_dtype, "CPU KV cache type (auto: f16 for half-precision checkpoints)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}))->capture_default_str();
  sub->callback([a] { run(*a); });
}

}  // namespace sspan::bench
