// sspan-bench e2e: end-to-end decode throughput of span policies side by side on a
// dataset's reference completions (teacher forcing through the scheduler, see
// e2e_replay.h). Records are grouped into length buckets of their completion and each
// bucket runs on its own, batch B at a time with freed slots refilled from the bucket.
// Per bucket and policy: decode tokens/s (median and range over --reps), mean sparsity,
// attended K/V bytes per decode token, and the tokens/s ratio against dense.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "bench.h"
#include "e2e_replay.h"
#include "io/model_files.h"
#include "sspan/error.h"
#include "sspan/log.h"

namespace sspan::bench {
namespace {

struct E2eArgs {
  std::string model_dir, data, device = "cpu", dtype = "float16", kv_dtype = "auto", format = "md", tokenizer;
  std::vector<std::string> spans{"dense", "arith"};
  int batch = 48, bucket = 256, reps = 3, threads = 0, block = 64, max_context = 0, limit = 0, max_step_rows = 512;
  int per_bucket = 0;  // most records replayed per bucket (0: all)
};

struct Cell {  // one (bucket, policy)
  std::vector<double> tokens_per_s;  // one per rep
  ReplayTotals last;                 // sparsity and attended counts are the same every rep
  double median() const {
    std::vector<double> v = tokens_per_s;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  }
  double min() const { return *std::min_element(tokens_per_s.begin(), tokens_per_s.end()); }
  double max() const { return *std::max_element(tokens_per_s.begin(), tokens_per_s.end()); }
};

std::string bucket_name(int b, int size) { return fmt::format("{}-{}", b * size, (b + 1) * size); }

void run(const E2eArgs& a) {
  // Policies first: a typo is an error before anything loads. "recycled:k=64,stride=16"
  // is one policy, however the command line split it.
  const std::vector<std::string> spans = SpanPolicy::split_list(fmt::format("{}", fmt::join(a.spans, ",")));
  for (const auto& p : spans) SpanPolicy::parse(p, a.block);

  const auto dir = std::filesystem::path(a.model_dir);
  const ModelMeta meta = open_model_meta(dir, a.tokenizer);
  const std::vector<ReplayRecord> records = read_replay_records(a.data, meta.tokenizer, a.limit);
  const ModelConfig& cfg = meta.config;
  int ctx = a.max_context;
  if (ctx == 0) {  // just enough for the longest record
    for (const auto& r : records) ctx = std::max(ctx, r.positions());
    ctx = std::max(ctx, 2);
  }
  for (const auto& r : records) {
    if (r.positions() > ctx)
      throw Error(fmt::format("{}: prompt + completion are {} tokens but the context holds {} (--max-context)",
                              r.source, r.positions() + 1, ctx));
    if (r.positions() > cfg.max_position_embeddings)
      throw Error(fmt::format("{}: prompt + completion are {} tokens, beyond the model's max_position_embeddings {}",
                              r.source, r.positions() + 1, cfg.max_position_embeddings));
  }

  EngineOptions eo;
  eo.model_dir = dir;
  eo.tokenizer_file = a.tokenizer;
  eo.device = a.device;
  eo.dtype = a.dtype;
  eo.kv_dtype = a.kv_dtype;
  eo.threads = a.threads;
  eo.max_context = ctx;
  eo.max_batch = a.batch;
  eo.max_step_rows = a.max_step_rows;
  Engine engine(eo);

  std::map<int, std::vector<const ReplayRecord*>> buckets;
  for (const auto& r : records) buckets[int(r.completion.size()) / a.bucket].push_back(&r);
  if (a.per_bucket > 0)  // the first records of each bucket, in file order
    for (auto& [b, members] : buckets) members.resize(std::min(members.size(), size_t(a.per_bucket)));

  // Validate and warm up: one batch of the first bucket under each policy, untimed.
  {
    const auto& first = buckets.begin()->second;
    const std::vector<const ReplayRecord*> warm(first.begin(), first.begin() + std::min<size_t>(first.size(), size_t(a.batch)));
    for (const auto& p : spans) replay(engine, warm, {p, a.block});
  }

  std::map<int, std::map<std::string, Cell>> cells;
  for (const auto& [b, members] : buckets) {
    for (int rep = 0; rep < a.reps; ++rep) {
      // Alternate the policy order between reps so drifting machine load hits both.
      std::vector<std::string> order = spans;
      if (rep % 2) std::reverse(order.begin(), order.end());
      for (const auto& p : order) {
        const ReplayTotals t = replay(engine, members, {p, a.block});
        Cell& c = cells[b][p];
        c.tokens_per_s.push_back(double(t.decode_tokens) / t.seconds);
        c.last = t;
      }
    }
    std::fprintf(stderr, "bucket %s: %zu records done\n", bucket_name(b, a.bucket).c_str(), members.size());
  }

  // K/V bytes one decode token reads: its attended positions' K and V rows in every layer.
  const double kv_row_bytes = 2.0 * cfg.num_hidden_layers * cfg.kv_dim() * engine.kv_element_bytes();
  struct Row {
    std::string bucket, span;
    int64_t n;
    double mean_tokens, median, min, max, sparsity, kv_bytes, vs_dense;
  };
  std::vector<Row> rows;
  for (const auto& [b, by_policy] : cells) {
    const auto dense = by_policy.find("dense");
    for (const auto& p : spans) {
      const Cell& c = by_policy.at(p);
      const ReplayTotals& t = c.last;
      const double pos = double(std::max<int64_t>(t.decode_positions, 1));
      rows.push_back({bucket_name(b, a.bucket), p, t.records, double(t.decode_tokens) / double(t.records), c.median(),
                      c.min(), c.max(), t.sparsity_sum / pos, double(t.attended) * kv_row_bytes / pos,
                      dense != by_policy.end() ? c.median() / dense->second.median() : 0.0});
    }
  }

  const std::string header =
      fmt::format("{}\nbackend: {} | model: {} | dataset: {} ({} records) | batch {} | bucket {} | reps {} | context {} "
                  "| KV element {} bytes",
                  build_description(), engine.load_stats().backend, a.model_dir, a.data, records.size(), a.batch,
                  a.bucket, a.reps, ctx, engine.kv_element_bytes());
  if (a.format == "json") {
    nlohmann::json out = {{"build", build_description()}, {"backend", engine.load_stats().backend},
                          {"model", a.model_dir},         {"dataset", a.data},
                          {"batch", a.batch},             {"bucket", a.bucket},
                          {"reps", a.reps},               {"context", ctx},
                          {"rows", nlohmann::json::array()}};
    for (const Row& r : rows)
      out["rows"].push_back({{"bucket", r.bucket},
                             {"span", r.span},
                             {"n", r.n},
                             {"mean_completion_tokens", r.mean_tokens},
                             {"decode_tokens_per_s", r.median},
                             {"decode_tokens_per_s_min", r.min},
                             {"decode_tokens_per_s_max", r.max},
                             {"mean_sparsity", r.sparsity},
                             {"kv_bytes_per_token", r.kv_bytes},
                             {"vs_dense", r.vs_dense}});
    fmt::print("{}\n", out.dump(2));
    return;
  }
  if (a.format == "csv") {
    fmt::print("bucket,span,n,mean_completion_tokens,decode_tokens_per_s,min,max,mean_sparsity,kv_bytes_per_token,vs_dense\n");
    for (const Row& r : rows)
      fmt::print("{},{},{},{:.1f},{:.1f},{:.1f},{:.1f},{:.4f},{:.0f},{:.4f}\n", r.bucket, r.span, r.n, r.mean_tokens,
                 r.median, r.min, r.max, r.sparsity, r.kv_bytes, r.vs_dense);
    return;
  }
  fmt::print("{}\n\n", header);
  fmt::print("| completion tokens | span | n | mean tokens | decode tokens/s (median) | min-max | mean sparsity | K/V "
             "bytes/token | vs dense |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows)
    fmt::print("| {} | {} | {} | {:.0f} | {:.1f} | {:.1f}-{:.1f} | {:.3f} | {:.0f} | {} |\n", r.bucket, r.span, r.n,
               r.mean_tokens, r.median, r.min, r.max, r.sparsity, r.kv_bytes,
               r.vs_dense > 0 ? fmt::format("{:.3f}", r.vs_dense) : "-");
}

}  // namespace

void add_e2e_bench(CLI::App& app) {
  auto a = std::make_shared<E2eArgs>();
  auto* sub = app.add_subcommand("e2e", "Dense-against-span decode throughput on a dataset's reference completions");
  sub->add_option("-m,--model", a->model_dir, "Model: a directory, a .gguf file or a .safetensors file")->required()->check(CLI::ExistingPath);
  sub->add_option("-d,--data", a->data, "JSONL of {prompt, completion} (sspan-datagen arith|summary)")->required();
  sub->add_option("--span", a->spans, "Span policies side by side (comma-separated)")->delimiter(',');
  sub->add_option("--batch", a->batch, "Sequences decoded together (KV slots)")->check(CLI::PositiveNumber);
  sub->add_option("--bucket", a->bucket, "Length bucket of the completion, in tokens")->check(CLI::PositiveNumber);
  sub->add_option("--reps", a->reps, "Timed runs of every bucket and policy")->check(CLI::PositiveNumber);
  sub->add_option("--limit", a->limit, "Only the first N records")->check(CLI::NonNegativeNumber);
  sub->add_option("--per-bucket", a->per_bucket, "At most N records of each length bucket (0: all)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--span-block", a->block, "Span encoding block size")->check(CLI::IsMember({16, 32, 64, 128, 256}));
  sub->add_option("--max-context", a->max_context, "KV cache context (default: the longest record)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-step-rows", a->max_step_rows, "Rows per forward step (prompt chunks + decode rows)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--format", a->format, "md, csv or json")->check(CLI::IsMember({"md", "csv", "json"}));
  sub->add_option("--device", a->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--dtype", a->dtype, "GPU dtype")->check(CLI::IsMember({"float16", "bfloat16"}));
  sub->add_option("--kv-dtype", a->kv_dtype, "CPU KV cache type (auto: f16 for half-precision checkpoints)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.model (default: the model directory's)");
  sub->add_option("-t,--threads", a->threads, "CPU threads (0 = all)")->check(CLI::NonNegativeNumber);
  sub->callback([a] {
    set_log_level(LogLevel::Warn);
    run(*a);
  });
}

}  // namespace sspan::bench
