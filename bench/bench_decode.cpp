// sspan-bench decode: end-to-end decode throughput of a checkpoint at several batch sizes:
// tokens/s, the bytes each step must read (every weight once + the attended K/V rows) per
// second, and that as a share of the machine's measured memory bandwidth.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <numeric>

#include "bench.h"
#include "common/check.h"
#include "model/llama.h"

namespace sspan::bench {
namespace {

struct DecodeArgs {
  std::string model_dir, device = "cpu", dtype = "float16", kv_dtype = "auto";
  std::vector<int> batches{1, 8};
  int prompt_tokens = 32, steps = 64, threads = 0;
};

struct Row {
  int batch;
  double tokens_per_s, ms_per_step, gbs, pct;
};

// kv_bytes_per_pos: bytes of K and V one position of one sequence holds over all layers.
Row run_one(LlamaModel& m, const DecodeArgs& a, int batch, size_t weight_bytes, double kv_bytes_per_pos, double bw) {
  const ModelConfig& c = m.config();
  // Prefill every sequence with the same synthetic prompt (ids spread over the vocab).
  std::vector<int32_t> ids(size_t(a.prompt_tokens)), pos(ids.size()), slot(ids.size());
  for (int i = 0; i < a.prompt_tokens; ++i) ids[size_t(i)] = i == 0 ? c.bos_token_id : 3 + (i * 7919) % (c.vocab_size - 3);
  std::iota(pos.begin(), pos.end(), 0);
  std::vector<float> logits(size_t(batch) * size_t(c.vocab_size));
  for (int s = 0; s < batch; ++s) {
    std::fill(slot.begin(), slot.end(), s);
    const int32_t last = int32_t(ids.size()) - 1;
    m.forward({ids, pos, slot, nullptr, std::span(&last, 1)});
  }
  m.read_logits(logits, 1);
  for (int v = 0; v < c.vocab_size; ++v)
    SSPAN_CHECK(std::isfinite(logits[size_t(v)]), "validation: prefill logit {} is not finite", v);

  const size_t nb = size_t(batch);
  std::vector<int32_t> tok(nb), p(nb), sl(nb), rows(nb);
  std::iota(sl.begin(), sl.end(), 0);
  std::iota(rows.begin(), rows.end(), 0);
  auto step = [&](int k) {
    for (int s = 0; s < batch; ++s) {
      tok[size_t(s)] = 3 + (k * 31 + s) % (c.vocab_size - 3);
      p[size_t(s)] = a.prompt_tokens + k;
    }
    m.forward({tok, p, sl, nullptr, rows});
    m.read_logits(logits, batch);
  };
  step(0);  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 1; k <= a.steps; ++k) step(k);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int v = 0; v < c.vocab_size; ++v)
    SSPAN_CHECK(std::isfinite(logits[size_t(v)]), "validation: decode logit {} is not finite", v);

  // Bytes a step must read: weights once, plus K and V of every attended position.
  const double mean_ctx = a.prompt_tokens + 1 + a.steps / 2.0;
  const double kv_bytes = kv_bytes_per_pos * mean_ctx * batch;
  const double step_s = sec / a.steps;
  const double gbs = (double(weight_bytes) + kv_bytes) / step_s / 1e9;
  return {batch, batch * a.steps / sec, step_s * 1e3, gbs, bw > 0 ? 100.0 * gbs / bw : 0.0};
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
#else
    SSPAN_FAIL("this build has no CUDA backend");
#endif
  }
  LlamaModel m(c, ckpt, *be);
  const int max_batch = *std::max_element(a.batches.begin(), a.batches.end());
  const int max_ctx = a.prompt_tokens + a.steps + 2;
  m.allocate(std::max(a.prompt_tokens, max_batch), std::max(a.prompt_tokens, max_batch), max_batch, max_ctx);
  const double kv_bytes_per_pos = double(be->kv_cache_bytes()) / (double(max_batch) * max_ctx);
  fmt::print("{}\nbackend: {} | model: {} ({:.1f} M parameters, {:.1f} MB of weights as stored)",
             build_description(), be->name(), a.model_dir, c.num_parameters() / 1e6, m.weight_bytes() / 1e6);
  if (bw > 0) fmt::print(" | measured memory read bandwidth {:.1f} GB/s", bw);
  fmt::print("\nprompt {} tokens, {} decode steps\n\n", a.prompt_tokens, a.steps);
  fmt::print("| batch | decode tokens/s | ms/step | GB/s read | % of bandwidth |\n|---:|---:|---:|---:|---:|\n");
  for (int b : a.batches) {
    const Row r = run_one(m, a, b, m.weight_bytes(), kv_bytes_per_pos, bw);
    fmt::print("| {} | {:.1f} | {:.2f} | {:.2f} | {:.1f} |\n", r.batch, r.tokens_per_s, r.ms_per_step, r.gbs, r.pct);
  }
}

}  // namespace

void add_decode_bench(CLI::App& app) {
  auto a = std::make_shared<DecodeArgs>();
  auto* sub = app.add_subcommand("decode", "End-to-end decode throughput and memory bandwidth use");
  sub->add_option("-m,--model", a->model_dir, "Model directory")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--batch", a->batches, "Batch sizes")->delimiter(',');
  sub->add_option("--prompt-tokens", a->prompt_tokens, "Prompt length")->check(CLI::PositiveNumber);
  sub->add_option("--steps", a->steps, "Timed decode steps")->check(CLI::PositiveNumber);
  sub->add_option("--device", a->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--dtype", a->dtype, "GPU dtype")->check(CLI::IsMember({"float16", "bfloat16"}));
  sub->add_option("-t,--threads", a->threads, "CPU threads (0 = all)");
  sub->add_option("--kv-dtype", a->kv_dtype, "CPU KV cache type (auto: f16 for half-precision checkpoints)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
  sub->callback([a] { run(*a); });
}

}  // namespace sspan::bench
