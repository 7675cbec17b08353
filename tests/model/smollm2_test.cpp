// A real pretrained model: SmolLM2-135M-Instruct (GQA 9/3, tied embeddings, byte-level
// BPE), run from its Q4_1 GGUF and from the float32 Hugging Face layout converted from it,
// against what transformers computes on the same weights (tests/data/smollm2/golden.json,
// scripts/smollm2_goldens.py): fp32 logits within 1e-4 relative, the prompt's token ids,
// and the greedy continuation wherever the top-2 margin is clear. Skips when the model has
// not been fetched (scripts/fetch_smollm2.py).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "io/model_files.h"
#include "model/llama.h"
#include "runtime/sampler.h"
#include "sspan/engine.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

constexpr double kClearMargin = 1e-3;

class SmolLM2 : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (test::smollm2_dir().empty()) GTEST_SKIP() << test::smollm2_missing_message();
    std::ifstream f(test::source_dir() / "tests/data/smollm2/golden.json");
    ASSERT_TRUE(f);
    golden_ = nlohmann::json::parse(f);
    model_ = GetParam() == "gguf" ? test::smollm2_gguf() : test::smollm2_dir() / "hf";
  }
  nlohmann::json golden_;
  std::filesystem::path model_;
};

constexpr size_t kGreedySteps = 8;  // of the golden's 16: enough to see the route decode, cheap on a CPU

// Greedy continuation compared with the golden up to the first step whose margin is not
// clear (after a near-tie the continuations legitimately diverge).
void expect_greedy(const std::vector<int>& got, const nlohmann::json& golden, size_t p, const std::string& what) {
  const auto greedy = golden["greedy"][p].get<std::vector<int>>();
  const auto margins = golden["margins"][p].get<std::vector<double>>();
  ASSERT_GE(got.size(), kGreedySteps);
  for (size_t k = 0; k < kGreedySteps; ++k) {
    if (got[k] == greedy[k]) continue;
    EXPECT_LT(margins[k], kClearMargin) << what << " prompt " << p << " step " << k << ": " << got[k] << " vs "
                                        << greedy[k];
    break;
  }
}

TEST_P(SmolLM2, LogitsAndGreedyTokensMatchTransformers) {
  const ModelFiles files = open_model_files(model_, "", DType::F32);
  EXPECT_EQ(files.config.num_key_value_heads, 3);
  EXPECT_TRUE(files.config.tie_word_embeddings);
  auto be = make_cpu_backend(2);
  LlamaModel m(files.config, files.checkpoint, *be);
  const size_t P = golden_["prompts"].size();
  m.allocate(64, 64, int(P), 128);
  const size_t V = size_t(files.config.vocab_size);
  for (size_t p = 0; p < P; ++p) {
    const auto ids = golden_["prompts"][p]["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(files.tokenizer.encode(golden_["prompts"][p]["text"].get<std::string>(), files.tokenizer.add_bos()),
              std::vector<int>(ids.begin(), ids.end()));
    const size_t n = ids.size();
    std::vector<int32_t> pos(n), slot(n, int32_t(p)), rows(n);
    std::iota(pos.begin(), pos.end(), 0);
    std::iota(rows.begin(), rows.end(), 0);
    const std::vector<RowMode> dense(n, RowMode::Dense);
    m.forward({ids, pos, slot, dense, nullptr, rows});
    std::vector<float> logits(n * V);
    m.read_logits(logits, int(n));
    for (size_t i = 0; i < n; ++i) {
      const auto cols = golden_["checked_ids"][p][i].get<std::vector<int>>();
      const auto want = golden_["logits"][p][i].get<std::vector<double>>();
      double scale = 1.0;
      for (double w : want) scale = std::max(scale, std::abs(w));
      for (size_t k = 0; k < cols.size(); ++k)
        ASSERT_NEAR(logits[i * V + size_t(cols[k])], want[k], 1e-4 * scale)
            << GetParam() << " prompt " << p << " position " << i << " token " << cols[k];
    }
    if (p != 0) continue;  // greedy decode of the first prompt, one step at a time
    std::vector<int> got;
    int32_t next = argmax({logits.data() + (n - 1) * V, V});
    std::vector<float> step(V);
    while (got.size() < kGreedySteps) {
      got.push_back(next);
      const int32_t at = int32_t(n + got.size() - 1), row = 0, s = int32_t(p);
      const RowMode mode = RowMode::Dense;
      m.forward({std::span(&next, 1), std::span(&at, 1), std::span(&s, 1), std::span(&mode, 1), nullptr,
                 std::span(&row, 1)});
      m.read_logits(step, 1);
      next = argmax(step);
    }
    expect_greedy(got, golden_, p, GetParam());
  }
}

// End to end through the engine (model path resolution, tokenizer, decode loop), on the
// GGUF; the HF layout's tokenizer and numbers are checked above.
TEST(SmolLM2Engine, GeneratesTheGreedyTokensFromTheGguf) {
  if (test::smollm2_dir().empty()) GTEST_SKIP() << test::smollm2_missing_message();
  std::ifstream f(test::source_dir() / "tests/data/smollm2/golden.json");
  ASSERT_TRUE(f);
  const auto golden_ = nlohmann::json::parse(f);
  EngineOptions o;
  o.model_dir = test::smollm2_gguf();
  o.threads = 2;
  o.max_context = 128;
  Engine e(o);
  GenerateOptions g;
  g.max_new_tokens = int(kGreedySteps);
  g.stop_at_eos = false;
  const auto r = e.generate({golden_["prompts"][1]["text"].get<std::string>()}, g)[0];
  EXPECT_EQ(r.prompt_ids, golden_["prompts"][1]["ids"].get<std::vector<int>>());
  expect_greedy(r.ids, golden_, 1, "engine");
}

INSTANTIATE_TEST_SUITE_P(BothRoutes, SmolLM2, ::testing::Values("gguf", "hf"));

}  // namespace
}  // namespace sspan
