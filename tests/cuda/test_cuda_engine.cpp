// The engine on the GPU against the engine on the CPU, end to end with the real LLaMA
// tokenizer and a random fp16 checkpoint: 64 greedy steps under `dense` and `arith`.
// Greedy tokens must be identical wherever the CPU's top-2 margin is clear, and the GPU's
// log-probabilities of the CPU continuation must agree with the CPU's within fp16 noise.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "cuda_test_util.h"
#include "model/llama.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "sspan/engine.h"
#include "support/test_paths.h"

namespace sspan::test {
namespace {

constexpr const char* kPrompt = "(42 * 56) + (5 * 32) [0]\n[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n";
constexpr int kSteps = 64;

// CPU top-2 margin of every position of `ids`, with the span rule applied as the engine does.
std::vector<float> cpu_margins(const std::filesystem::path& dir, const Tokenizer& tok, const std::vector<int32_t>& ids,
                               size_t n_prompt, const std::string& policy) {
  const ModelConfig cfg = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  auto be = make_cpu_backend(2);
  LlamaModel m(cfg, ckpt, *be);
  const int T = int(ids.size());
  m.allocate(T, T, 1, T + 1);
  std::shared_ptr<const SpanGrammar> g;
  if (policy != "dense") g = std::make_shared<SpanGrammar>(SpanGrammar::builtin(policy));
  SpanState state(g, 64);
  SpanBatch span;
  span.reset(64);
  const size_t n = static_cast<size_t>(T);
  std::vector<int32_t> pos(n), slot(n, 0), rows(n);
  std::iota(pos.begin(), pos.end(), 0);
  std::iota(rows.begin(), rows.end(), 0);
  for (int t = 0; t < T; ++t) {
    state.push(t == 0 ? std::string() : tok.token_bytes(ids[size_t(t)]), size_t(t) < n_prompt);
    state.append_last(span);
  }
  m.forward({ids, pos, slot, &span, rows});
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

TEST(CudaEngineTest, GreedyTokensAndLogprobsMatchTheCpuUnderDenseAndArith) {
  SSPAN_REQUIRE_CUDA();
  const auto tokenizer = llama_tokenizer_path();
  if (tokenizer.empty()) GTEST_SKIP() << "LLaMA tokenizer not found; set SSPAN_LLAMA_TOKENIZER";
  TinyLlamaSpec spec;
  spec.vocab_size = 32000;
  spec.hidden_size = 256;
  spec.num_heads = 4;  // head_dim 64
  spec.num_kv_heads = 2;
  spec.intermediate_size = 512;
  spec.dtype = DType::F16;  // both devices use the same weights
  spec.init_scale = 0.06f;
  const auto dir = write_tiny_llama(scratch_dir("engine"), spec);

  for (const std::string policy : {"dense", "arith"}) {
    EngineOptions o;
    o.model_dir = dir;
    o.tokenizer_file = tokenizer;
    o.max_context = 256;
    Engine cpu(o);
    o.device = "cuda";
    Engine gpu(o);
    GenerateOptions g;
    g.max_new_tokens = kSteps;
    g.stop_at_eos = false;
    g.span.policy = policy;
    const auto a = cpu.generate({kPrompt}, g)[0], b = gpu.generate({kPrompt}, g)[0];
    ASSERT_EQ(a.ids.size(), size_t(kSteps));
    ASSERT_EQ(b.ids.size(), size_t(kSteps));

    std::vector<int32_t> ids(a.prompt_ids.begin(), a.prompt_ids.end());
    ids.insert(ids.end(), a.ids.begin(), a.ids.end() - 1);
    const auto margins = cpu_margins(dir, cpu.tokenizer(), ids, a.prompt_ids.size(), policy);
    int same = 0;
    for (int k = 0; k < kSteps; ++k) {
      if (a.ids[size_t(k)] != b.ids[size_t(k)]) {
        // Only a near-tie of the CPU's logits may flip under fp16 rounding; after it the
        // continuations legitimately diverge.
        EXPECT_LT(margins[a.prompt_ids.size() - 1 + size_t(k)], 0.05f) << policy << " step " << k;
        break;
      }
      ++same;
    }
    EXPECT_GE(same, 16) << policy;

    // The CPU continuation scored on both devices: fp16 log-probabilities close to fp32.
    const std::string completion = a.text;
    const auto sa = cpu.score(kPrompt, completion, g.span), sb = gpu.score(kPrompt, completion, g.span);
    ASSERT_EQ(sa.tokens.size(), sb.tokens.size());
    for (size_t k = 0; k < sa.tokens.size(); ++k)
      EXPECT_NEAR(sb.tokens[k].logprob, sa.tokens[k].logprob, 0.05 + 0.02 * std::abs(sa.tokens[k].logprob))
          << policy << " token " << k;
  }
}

}  // namespace
}  // namespace sspan::test

namespace sspan::test {
namespace {

TEST(CudaEngineTest, DeviceSamplingIsDeterministicForASeed) {
  SSPAN_REQUIRE_CUDA();
  const auto tokenizer = llama_tokenizer_path();
  if (tokenizer.empty()) GTEST_SKIP() << "LLaMA tokenizer not found; set SSPAN_LLAMA_TOKENIZER";
  TinyLlamaSpec spec;
  spec.vocab_size = 32000;
  spec.hidden_size = 128;
  spec.num_heads = 2;
  spec.num_kv_heads = 2;
  spec.dtype = DType::F16;
  const auto dir = write_tiny_llama(scratch_dir("sampling"), spec);
  EngineOptions o;
  o.model_dir = dir;
  o.tokenizer_file = tokenizer;
  o.device = "cuda";
  o.max_batch = 2;
  o.max_context = 128;
  Engine e(o);
  GenerateOptions g;
  g.max_new_tokens = 40;
  g.stop_at_eos = false;
  g.sampling = {.temperature = 1.0f, .top_k = 40, .top_p = 0.95f, .seed = 5};
  const auto a = e.generate({"Once upon a time", "Hello"}, g), b = e.generate({"Once upon a time", "Hello"}, g);
  EXPECT_EQ(a[0].ids, b[0].ids);
  EXPECT_EQ(a[1].ids, b[1].ids);
  g.sampling.seed = 6;
  EXPECT_NE(e.generate({"Once upon a time", "Hello"}, g)[0].ids, a[0].ids);
}

}  // namespace
}  // namespace sspan::test
