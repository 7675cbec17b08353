// The engine on the GPU against the engine on the CPU, end to end: the shipped models on
// the README's job (head_dim 32), long prompts prefilled in several passes under `dense`
// and `arith` (mixed steps), GQA models of every head dim, the peer policies (`recycled`,
// `window`), and seeded device sampling.
// Greedy tokens must be identical wherever the CPU's top-2 margin is clear, the GPU's
// log-probabilities of the CPU continuation must agree with the CPU's within fp16 noise,
// and the attention routing (which kernel served which rows) is asserted.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <sstream>

#include "cuda/cuda_backend.h"
#include "cuda/row_routes.h"
#include "cuda_test_util.h"
#include "model/llama.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "sspan/engine.h"
#include "sspan/error.h"
#include "support/test_paths.h"

namespace sspan::test {
namespace {

constexpr const char* kTrace = "(42 * 56) + (5 * 32) [0]\n[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n";

std::filesystem::path shipped(const char* name) { return source_dir() / "models" / name; }
std::filesystem::path arith_tokenizer() { return shipped("arith-tiny") / "tokenizer.model"; }

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// An arithmetic trace of about `lines` lines: the task line, then split and reference
// lines (the `arith` rule makes those sparse).
std::string long_arith_prompt(int lines) {
  std::string s = "(42 * 56) + (5 * 32) [0]\n";
  for (int i = 1; i < lines; ++i) {
    switch (i % 3) {
      case 1: s += "[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n"; break;
      case 2: s += "[-1] So 42 * 56=2352 [" + std::to_string(i) + "]\n"; break;
      default: s += "[0," + std::to_string(i - 1) + "] 5 * 32=160 [" + std::to_string(i) + "]\n"; break;
    }
  }
  return s;
}

// The token-by-token span state of ids under `policy`, as the engine builds it.
struct Replayed {
  std::vector<RowMode> mode;
  SpanBatch span;
};
Replayed replay(const Tokenizer& tok, int32_t bos, const std::vector<int32_t>& ids, size_t n_prompt,
                const std::string& policy) {
  std::shared_ptr<const SpanGrammar> g;
  if (policy != "dense") g = std::make_shared<SpanGrammar>(SpanGrammar::builtin(policy));
  SpanState state(g, 64);
  Replayed r;
  r.span.reset(64);
  for (size_t t = 0; t < ids.size(); ++t) {
    state.push(ids[t] == bos ? std::string() : tok.token_bytes(ids[t]), t < n_prompt);
    state.append_last(r.span);
    r.mode.push_back(state.last_sparse() ? RowMode::Sparse : RowMode::Dense);
  }
  return r;
}

// CPU top-2 margin of every position of `ids`, with the span rule applied as the engine does.
std::vector<float> cpu_margins(const std::filesystem::path& dir, const Tokenizer& tok, const std::vector<int32_t>& ids,
                               size_t n_prompt, const std::string& policy) {
  const ModelConfig cfg = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  auto be = make_cpu_backend(2);
  LlamaModel m(cfg, ckpt, *be);
  const int T = int(ids.size());
  m.allocate(T, T, 1, T + 1);
  const Replayed r = replay(tok, cfg.bos_token_id, ids, n_prompt, policy);
  const size_t n = static_cast<size_t>(T);
  std::vector<int32_t> pos(n), slot(n, 0), rows(n);
  std::iota(pos.begin(), pos.end(), 0);
  std::iota(rows.begin(), rows.end(), 0);
  m.forward({ids, pos, slot, r.mode, &r.span, rows});
  std::vector<float> logits(size_t(T) * size_t(cfg.vocab_size));
  m.read_logits(logits, T);
  std::vector<float> margins;
  for (int t = 0; t < T; ++t) {
    std::vector<float> row(logits.begin() + long(t) * cfg.vocab_size, logits.begin() + long(t + 1) * cfg.vocab_size);
    std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<>());
    margins.push_back(row[0] - row[1]);
  }
  return margins;
}

// Rows the prefill kernel should get for a prompt prefilled in passes of `pass_rows`.
int64_t expected_prefill_rows(const std::vector<RowMode>& mode, int pass_rows) {
  int64_t rows = 0;
  for (size_t begin = 0; begin < mode.size(); begin += size_t(pass_rows)) {
    const size_t n = std::min(mode.size() - begin, size_t(pass_rows));
    std::vector<int32_t> pos(n), slot(n, 0), tiles(2 * n), decode(n);
    std::iota(pos.begin(), pos.end(), int32_t(begin));
    rows += cuda::route_rows(pos, slot, std::span(mode).subspan(begin, n), tiles.data(), decode.data()).prefill_rows;
  }
  return rows;
}

// The same model on the CPU and on the GPU (fp16), from one set of options.
struct EnginePair {
  Engine cpu, gpu;
  explicit EnginePair(EngineOptions o) : cpu(with_device(o, "cpu")), gpu(with_device(o, "cuda")) {}
  static EngineOptions with_device(EngineOptions o, const char* device) {
    o.device = device;
    return o;
  }
};

// How the GPU routed the attention rows of prefilling `prompt` alone (no token generated).
cuda::AttentionRouting prefill_routing(Engine& gpu, const std::string& prompt, const std::string& policy) {
  cuda::reset_attention_routing();
  GenerateOptions g;
  g.max_new_tokens = 0;
  g.span.policy = policy;
  gpu.generate({prompt}, g);
  return cuda::attention_routing();
}

struct Comparison {
  int same = 0;  // leading greedy tokens identical on both devices
};

// Greedy generation on both engines, compared as the file comment says. `gpu_policy`, when
// given, is what the GPU generates under: a policy whose spans are `policy`'s sets.
Comparison compare_generation(Engine& cpu, Engine& gpu, const std::filesystem::path& dir, const std::string& prompt,
                              const std::string& policy, int steps, const std::string& what,
                              const std::string& gpu_policy = {}) {
  SCOPED_TRACE(what + " under " + policy + (gpu_policy.empty() ? "" : " (GPU: " + gpu_policy + ")"));
  GenerateOptions g;
  g.max_new_tokens = steps;
  g.stop_at_eos = false;
  g.span.policy = policy;
  GenerateOptions on_gpu = g;
  if (!gpu_policy.empty()) on_gpu.span.policy = gpu_policy;
  const auto a = cpu.generate({prompt}, g)[0], b = gpu.generate({prompt}, on_gpu)[0];
  EXPECT_EQ(a.ids.size(), size_t(steps));
  EXPECT_EQ(b.ids.size(), size_t(steps));
  Comparison c;
  if (a.ids.size() != size_t(steps) || b.ids.size() != size_t(steps)) return c;
  std::vector<int32_t> ids(a.prompt_ids.begin(), a.prompt_ids.end());
  ids.insert(ids.end(), a.ids.begin(), a.ids.end() - 1);
  const auto margins = cpu_margins(dir, cpu.tokenizer(), ids, a.prompt_ids.size(), policy);
  for (int k = 0; k < steps; ++k) {
    if (a.ids[size_t(k)] != b.ids[size_t(k)]) {
      // Only a near-tie of the CPU's logits may flip under fp16 rounding; after it the
      // continuations legitimately diverge.
      EXPECT_LT(margins[a.prompt_ids.size() - 1 + size_t(k)], 0.05f) << "step " << k;
      break;
    }
    ++c.same;
  }
  // The CPU continuation scored on both devices: fp16 log-probabilities close to fp32.
  const auto sa = cpu.score(prompt, a.text, g.span), sb = gpu.score(prompt, a.text, g.span);
  EXPECT_EQ(sa.tokens.size(), sb.tokens.size());
  for (size_t k = 0; k < std::min(sa.tokens.size(), sb.tokens.size()); ++k)
    EXPECT_NEAR(sb.tokens[k].logprob, sa.tokens[k].logprob, 0.05 + 0.02 * std::abs(sa.tokens[k].logprob))
        << "token " << k;
  return c;
}

TEST(CudaEngineTest, ShippedModelsOnTheReadmeJob) {
  SSPAN_REQUIRE_CUDA();
  const std::string prompt = read_text(source_dir() / "examples" / "arith.txt");
  for (auto [name, policy] : {std::pair{"arith-tiny", "arith"}, {"arith-tiny-dense", "dense"}}) {
    SCOPED_TRACE(name);
    EngineOptions o;
    o.model_dir = shipped(name);
    EnginePair e(o);
    Engine& cpu = e.cpu;
    Engine& gpu = e.gpu;
    ASSERT_EQ(gpu.config().head_dim, 32);
    // The prompt alone (one pass; the task line is dense): prefill serves its rows.
    const std::vector<int32_t> ids = gpu.tokenizer().encode(prompt, true);
    const Replayed rows = replay(gpu.tokenizer(), gpu.config().bos_token_id, ids, ids.size(), policy);
    const cuda::AttentionRouting r = prefill_routing(gpu, prompt, policy);
    EXPECT_EQ(r.prefill_rows, expected_prefill_rows(rows.mode, o.max_step_rows));
    EXPECT_EQ(r.prefill_rows + r.decode_rows, int64_t(ids.size()));
    if (ids.size() >= size_t(cuda::kMinPrefillRunRows)) {
      EXPECT_GT(r.prefill_rows, 0);
    }
    // The job itself: greedy to the end of the solution, as on the CPU.
    const Comparison c = compare_generation(cpu, gpu, o.model_dir, prompt, policy, 96, name);
    EXPECT_GE(c.same, 16);
  }
}

TEST(CudaEngineTest, RunsRecycledAndWindowAsTheCpuDoes) {
  SSPAN_REQUIRE_CUDA();
  EngineOptions o;
  o.model_dir = shipped("arith-tiny");
  EnginePair e(o);
  GenerateOptions g;
  g.max_new_tokens = 24;
  g.stop_at_eos = false;
  const std::string prompt = "(3 + 4) * 2 [0]\n";
  // Which keys a recycled step keeps depends on the attention; which steps are full and
  // how many keys the others keep does not: both devices count the same sparse tokens.
  for (const char* policy : {"recycled:k=16,stride=8", "recycled:k=4,stride=3,block=16", "window:sink=2,recent=8"}) {
    g.span.policy = policy;
    const auto gpu = e.gpu.generate({prompt}, g), cpu = e.cpu.generate({prompt}, g);
    ASSERT_EQ(gpu[0].ids.size(), 24u) << policy;
    EXPECT_EQ(gpu[0].span.sparse_tokens, cpu[0].span.sparse_tokens) << policy;
    EXPECT_DOUBLE_EQ(gpu[0].span.mean_sparsity, cpu[0].span.mean_sparsity) << policy;
    EXPECT_GT(gpu[0].span.sparse_tokens, 0) << policy;
  }
  // With k above the context every (layer, KV head) keeps every key: the GPU's recycled
  // steps (full steps recording the mass, per-head spans after them) give the CPU's dense
  // greedy tokens wherever its margin is clear.
  compare_generation(e.cpu, e.gpu, o.model_dir, read_text(source_dir() / "examples" / "arith.txt"), "dense", 48,
                     "arith-tiny", "recycled:k=100000,stride=3");
}

TEST(CudaEngineTest, ShippedModelInSeveralPrefillPasses) {
  SSPAN_REQUIRE_CUDA();
  const std::string prompt = long_arith_prompt(9);  // about 200 tokens, sparse lines included
  EngineOptions o;
  o.model_dir = shipped("arith-tiny");
  o.max_step_rows = 48;
  EnginePair e(o);
  compare_generation(e.cpu, e.gpu, o.model_dir, prompt, "arith", 32, "arith-tiny, 48-row passes");
}

// A random fp16 model with the arith tokenizer: hidden / heads = head_dim, kv_heads < heads for GQA.
std::filesystem::path random_model(const std::string& tag, int hidden, int heads, int kv_heads, int max_pos) {
  TinyLlamaSpec spec;
  spec.vocab_size = 300;
  spec.hidden_size = hidden;
  spec.num_heads = heads;
  spec.num_kv_heads = kv_heads;
  spec.intermediate_size = 2 * hidden;
  spec.max_position_embeddings = max_pos;
  spec.dtype = DType::F16;  // both devices use the same weights
  spec.init_scale = 0.06f;
  spec.seed = uint64_t(hidden * 31 + heads * 7 + kv_heads);
  return write_tiny_llama(scratch_dir(tag), spec);
}

TEST(CudaEngineTest, LongPromptsInSeveralPassesUnderDenseAndArith) {
  SSPAN_REQUIRE_CUDA();
  // head_dim 128, 4 query heads over 1 KV head (a group of 4: the tensor-core decode path).
  const auto dir = random_model("long_prompt", 512, 4, 1, 2048);
  const std::string prompt = long_arith_prompt(30);
  EngineOptions o;
  o.model_dir = dir;
  o.tokenizer_file = arith_tokenizer();
  o.max_context = 2048;
  EnginePair e(o);
  Engine& cpu = e.cpu;
  Engine& gpu = e.gpu;
  const std::vector<int32_t> ids = gpu.tokenizer().encode(prompt, true);
  ASSERT_GT(ids.size(), 600u) << "the prompt must need several 512-row passes";
  for (const std::string policy : {"dense", "arith"}) {
    SCOPED_TRACE(policy);
    const Replayed rows = replay(gpu.tokenizer(), gpu.config().bos_token_id, ids, ids.size(), policy);
    const int64_t want_prefill = expected_prefill_rows(rows.mode, o.max_step_rows);
    const int64_t sparse = std::count(rows.mode.begin(), rows.mode.end(), RowMode::Sparse);
    const cuda::AttentionRouting r = prefill_routing(gpu, prompt, policy);
    EXPECT_EQ(r.steps, int64_t((ids.size() + 511) / 512));  // one step per 512-row prefill pass
    EXPECT_EQ(r.prefill_rows, want_prefill);
    EXPECT_EQ(r.prefill_rows + r.decode_rows, int64_t(ids.size()));
    if (policy == "dense") {
      EXPECT_EQ(r.decode_rows, 0);
    } else {
      EXPECT_GT(sparse, 100) << "the trace's reference lines are sparse";
      EXPECT_GE(r.decode_rows, sparse);
      EXPECT_GE(r.mixed_steps, 1);
    }
    compare_generation(cpu, gpu, dir, prompt, policy, 24, "long prompt");
  }
}

TEST(CudaEngineTest, GqaModelsOfEveryHeadDim) {
  SSPAN_REQUIRE_CUDA();
  struct Shape {
    int hidden, heads, kv_heads;
  };
  // head_dim 48 (MHA), 80 (group 2), 96 (group 4), 64 (group 8), 128 (group 3).
  for (Shape s : {Shape{192, 4, 4}, Shape{320, 4, 2}, Shape{384, 4, 1}, Shape{512, 8, 1}, Shape{384, 3, 1}}) {
    const std::string what = "head_dim " + std::to_string(s.hidden / s.heads) + ", " + std::to_string(s.heads) + "/" +
                             std::to_string(s.kv_heads) + " heads";
    SCOPED_TRACE(what);
    const auto dir = random_model("gqa_" + std::to_string(s.hidden) + "_" + std::to_string(s.heads), s.hidden, s.heads,
                                  s.kv_heads, 512);
    EngineOptions o;
    o.model_dir = dir;
    o.tokenizer_file = arith_tokenizer();
    o.max_context = 512;
    EnginePair e(o);
    cuda::reset_attention_routing();
    compare_generation(e.cpu, e.gpu, dir, kTrace, "arith", 24, what);
    const cuda::AttentionRouting r = cuda::attention_routing();
    EXPECT_GT(r.prefill_rows, 0);
    EXPECT_GT(r.decode_rows, 0);
  }
}

TEST(CudaEngineTest, DeviceSamplingIsDeterministicForASeed) {
  SSPAN_REQUIRE_CUDA();
  const auto dir = random_model("sampling", 128, 2, 2, 512);
  EngineOptions o;
  o.model_dir = dir;
  o.tokenizer_file = arith_tokenizer();
  o.device = "cuda";
  o.max_batch = 2;
  o.max_context = 128;
  Engine e(o);
  GenerateOptions g;
  g.max_new_tokens = 40;
  g.stop_at_eos = false;
  g.sampling = {.temperature = 1.0f, .top_k = 40, .top_p = 0.95f, .seed = 5};
  const std::vector<std::string> prompts{"(42 * 56) + (5 * 32) [0]\n", "(1 / (7 - 6)) [0]\n"};
  const auto a = e.generate(prompts, g), b = e.generate(prompts, g);
  EXPECT_EQ(a[0].ids, b[0].ids);
  EXPECT_EQ(a[1].ids, b[1].ids);
  g.sampling.seed = 6;
  EXPECT_NE(e.generate(prompts, g)[0].ids, a[0].ids);
}

}  // namespace
}  // namespace sspan::test
