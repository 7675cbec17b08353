// Agreement with Hugging Face transformers: tiny random LlamaForCausalLM checkpoints and
// the logits / greedy continuations transformers computed on them (tests/data/hf, written
// by scripts/hf_reference.py). With an fp32 KV cache: logits within 1e-4 relative, greedy
// tokens equal wherever the top-2 margin is clear. With a half-precision KV cache (the
// default for half-precision checkpoints): looser logits, and greedy tokens equal wherever
// the margin is clear of what the cache's rounding can move.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <ostream>
#include <string>
#include <tuple>

#include "model/llama.h"
#include "runtime/sampler.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

// Per KV cache type: logit tolerance relative to the largest |logit| of the position (at
// least 1), and the top-2 margin below which rounding may legitimately flip a tie. The
// largest logit errors measured on these checkpoints: fp32 1e-6, fp16 6e-4, bf16 6e-3.
struct CacheTolerance {
  DType kv_dtype;
  double logits, clear_margin;
};
constexpr CacheTolerance kTolerances[] = {
    {DType::F32, 1e-4, 1e-3}, {DType::F16, 2e-3, 1e-2}, {DType::BF16, 1.5e-2, 5e-2}};
void PrintTo(const CacheTolerance& t, std::ostream* os) { *os << dtype_name(t.kv_dtype) << " KV cache"; }

class HfGolden : public ::testing::TestWithParam<std::tuple<std::string, CacheTolerance>> {};

TEST_P(HfGolden, LogitsAndGreedyTokensAgree) {
  const std::string name = std::get<0>(GetParam());
  const CacheTolerance tol = std::get<1>(GetParam());
  const auto dir = test::source_dir() / "tests/data/hf" / name;
  std::ifstream f(dir / "golden.json");
  ASSERT_TRUE(f) << "missing " << dir / "golden.json";
  const auto g = nlohmann::json::parse(f);

  const ModelConfig cfg = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  auto be = make_cpu_backend(2, tol.kv_dtype);
  LlamaModel m(cfg, ckpt, *be);
  const int P = int(g["prompts"].size()), V = cfg.vocab_size, new_tokens = g["new_tokens"];
  m.allocate(64, 64, P, 128);

  for (int p = 0; p < P; ++p) {
    const std::vector<int32_t> ids = g["prompts"][p].get<std::vector<int32_t>>();
    const int n = int(ids.size());
    const size_t un = static_cast<size_t>(n);
    std::vector<int32_t> pos(un), slot(un, p), rows(un);
    std::iota(pos.begin(), pos.end(), 0);
    std::iota(rows.begin(), rows.end(), 0);
    const std::vector<RowMode> dense(un, RowMode::Dense);
    m.forward({ids, pos, slot, dense, nullptr, rows});
    std::vector<float> logits(size_t(n) * size_t(V));
    m.read_logits(logits, n);
    for (int i = 0; i < n; ++i) {
      const auto want = g["logits"][p][i].get<std::vector<double>>();
      double scale = 1.0;
      for (double w : want) scale = std::max(scale, std::abs(w));
      for (int v = 0; v < V; ++v)
        ASSERT_NEAR(logits[size_t(i) * V + v], want[size_t(v)], tol.logits * scale)
            << name << " prompt " << p << " position " << i << " token " << v;
    }

    // Greedy continuation, one decode step at a time.
    const auto greedy = g["greedy"][p].get<std::vector<int32_t>>();
    const auto margins = g["margins"][p].get<std::vector<double>>();
    int32_t next = argmax({logits.data() + size_t(n - 1) * V, size_t(V)});
    for (int k = 0; k < new_tokens; ++k) {
      if (next != greedy[size_t(k)]) {
        // Only a near-tie may differ, and then the continuations legitimately diverge.
        ASSERT_LT(margins[size_t(k)], tol.clear_margin)
            << name << " prompt " << p << " step " << k << ": " << next << " vs " << greedy[size_t(k)];
        break;
      }
      const int32_t at = n + k, row = 0;
      const RowMode mode = RowMode::Dense;
      m.forward({std::span(&next, 1), std::span(&at, 1), std::span(&slot[0], 1), std::span(&mode, 1), nullptr,
                 std::span(&row, 1)});
      std::vector<float> step(static_cast<size_t>(V));
      m.read_logits(step, 1);
      next = argmax(step);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Transformers, HfGolden,
                         ::testing::Combine(::testing::Values("mha_tied", "mha_untied", "gqa_tied", "gqa_untied",
                                                              "rope_llama3", "rope_linear", "v5_config"),
                                            ::testing::ValuesIn(kTolerances)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_kv_" +
                                  std::string(dtype_name(std::get<1>(info.param).kv_dtype));
                         });

}  // namespace
}  // namespace sspan
