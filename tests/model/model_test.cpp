#include <fstream>
// The forward pass on tiny random checkpoints: prefill equals step-by-step decode, GQA
// equals MHA with repeated KV heads, batched decode equals single runs, every dtype and
// layout loads, and wrong checkpoints are refused with the tensor named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "model/llama.h"
#include "sspan/error.h"
#include "runtime/sampler.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

struct Loaded {
  ModelConfig config;
  Checkpoint ckpt;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
};

Loaded load(const std::filesystem::path& dir, int rows = 64, int slots = 4, int ctx = 128) {
  Loaded l{ModelConfig::from_file(dir / "config.json"), Checkpoint::open(dir), make_cpu_backend(2), nullptr};
  l.model = std::make_unique<LlamaModel>(l.config, l.ckpt, *l.backend);
  l.model->allocate(rows, rows, slots, ctx);
  return l;
}

// Logits of every position of `ids` in one prefill pass, [n][V].
std::vector<std::vector<float>> prefill_logits(LlamaModel& m, const std::vector<int32_t>& ids, int slot = 0) {
  const int n = int(ids.size()), V = m.config().vocab_size;
  const size_t un = static_cast<size_t>(n);
  std::vector<int32_t> pos(un), slots(un, slot), rows(un);
  std::iota(pos.begin(), pos.end(), 0);
  std::iota(rows.begin(), rows.end(), 0);
  const std::vector<RowMode> dense(un, RowMode::Dense);
  m.forward({ids, pos, slots, dense, nullptr, rows});
  std::vector<float> flat(size_t(n) * V);
  m.read_logits(flat, n);
  std::vector<std::vector<float>> out(n);
  for (int i = 0; i < n; ++i) out[i].assign(flat.begin() + i * V, flat.begin() + (i + 1) * V);
  return out;
}

// Logits of one decode step for one token at `pos` in `slot`.
std::vector<float> step_logits(LlamaModel& m, int32_t id, int32_t pos, int32_t slot = 0) {
  const int32_t row = 0;
  const RowMode mode = RowMode::Dense;
  m.forward({std::span(&id, 1), std::span(&pos, 1), std::span(&slot, 1), std::span(&mode, 1), nullptr,
             std::span(&row, 1)});
  std::vector<float> out(size_t(m.config().vocab_size));
  m.read_logits(out, 1);
  return out;
}

void expect_rel_close(const std::vector<float>& a, const std::vector<float>& b, double rel, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  double max_b = 0;
  for (float x : b) max_b = std::max(max_b, double(std::abs(x)));
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_FALSE(std::isnan(a[i])) << what;
    ASSERT_NEAR(a[i], b[i], rel * max_b) << what << " at " << i;
  }
}

std::vector<int32_t> some_ids(int n, int vocab, int seed) {
  std::vector<int32_t> ids = {1};
  for (int i = 1; i < n; ++i) ids.push_back(3 + (i * 37 + seed * 11) % (vocab - 3));
  return ids;
}

class PrefillVsDecode : public ::testing::TestWithParam<int> {};  // param: kv heads

TEST_P(PrefillVsDecode, StepByStepLogitsEqualOnePrefill) {
  TinyLlamaSpec spec;
  spec.num_kv_heads = GetParam();
  auto dir = write_tiny_llama(test::scratch_dir("ckpt"), spec);
  Loaded l = load(dir);
  const auto ids = some_ids(40, spec.vocab_size, 1);
  const auto full = prefill_logits(*l.model, ids);
  // Replay the same tokens one at a time into another slot.
  for (size_t p = 0; p < ids.size(); ++p) {
    auto step = step_logits(*l.model, ids[p], int32_t(p), 1);
    expect_rel_close(step, full[p], 1e-5, "position " + std::to_string(p));
  }
}

INSTANTIATE_TEST_SUITE_P(MhaAndGqa, PrefillVsDecode, ::testing::Values(4, 2, 1));

TEST(LlamaModel, GqaEqualsMhaWithRepeatedKvHeads) {
  TinyLlamaSpec gqa;
  gqa.num_kv_heads = 2;
  auto tensors = tiny_llama_tensors(gqa);
  // MHA twin: each kv head's rows of k_proj / v_proj repeated for every query head of its group.
  const int D = gqa.hidden_size / gqa.num_heads, group = gqa.num_heads / gqa.num_kv_heads;
  for (auto& t : tensors) {
    if (t.name.find("k_proj") == std::string::npos && t.name.find("v_proj") == std::string::npos) continue;
    std::vector<float> rep;
    const size_t row = size_t(gqa.hidden_size);
    for (int h = 0; h < gqa.num_kv_heads; ++h)
      for (int g = 0; g < group; ++g)
        rep.insert(rep.end(), t.values.begin() + long(h * D * row), t.values.begin() + long((h + 1) * D * row));
    t.values = rep;
    t.shape[0] = int64_t(gqa.num_heads) * D;
  }
  TinyLlamaSpec mha = gqa;
  mha.num_kv_heads = gqa.num_heads;
  auto dir_gqa = write_tiny_llama(test::scratch_dir("gqa"), gqa);
  auto dir_mha = test::scratch_dir("mha");
  write_safetensors(dir_mha / "model.safetensors", tensors);
  std::ofstream(dir_mha / "config.json") << tiny_llama_config_json(mha);

  Loaded a = load(dir_gqa), b = load(dir_mha);
  const auto ids = some_ids(30, gqa.vocab_size, 2);
  const auto la = prefill_logits(*a.model, ids), lb = prefill_logits(*b.model, ids);
  for (size_t p = 0; p < ids.size(); ++p) expect_rel_close(la[p], lb[p], 1e-5, "position " + std::to_string(p));
}

// Greedy continuation of several prompts decoded together equals each decoded alone.
std::vector<std::vector<int32_t>> greedy_batch(LlamaModel& m, const std::vector<std::vector<int32_t>>& prompts,
                                               int steps) {
  const int V = m.config().vocab_size;
  std::vector<std::vector<int32_t>> out(prompts.size());
  std::vector<int32_t> next(prompts.size());
  for (size_t s = 0; s < prompts.size(); ++s) next[s] = argmax(prefill_logits(m, prompts[s], int(s)).back());
  for (int k = 0; k < steps; ++k) {
    std::vector<int32_t> ids, pos, slot, rows;
    for (size_t s = 0; s < prompts.size(); ++s) {
      out[s].push_back(next[s]);
      ids.push_back(next[s]);
      pos.push_back(int32_t(prompts[s].size() + size_t(k)));
      slot.push_back(int32_t(s));
      rows.push_back(int32_t(s));
    }
    const std::vector<RowMode> dense(ids.size(), RowMode::Dense);
    m.forward({ids, pos, slot, dense, nullptr, rows});
    std::vector<float> logits(prompts.size() * size_t(V));
    m.read_logits(logits, int(prompts.size()));
    for (size_t s = 0; s < prompts.size(); ++s) next[s] = argmax({logits.data() + s * size_t(V), size_t(V)});
  }
  return out;
}

TEST(LlamaModel, BatchOfPromptsGivesTheTokensOfSingleRuns) {
  TinyLlamaSpec spec;
  spec.num_kv_heads = 2;
  auto dir = write_tiny_llama(test::scratch_dir("ckpt"), spec);
  Loaded l = load(dir);
  std::vector<std::vector<int32_t>> prompts = {some_ids(5, 96, 3), some_ids(17, 96, 4), some_ids(9, 96, 5)};
  const auto together = greedy_batch(*l.model, prompts, 20);
  for (size_t s = 0; s < prompts.size(); ++s) {
    Loaded single = load(dir);
    EXPECT_EQ(greedy_batch(*single.model, {prompts[s]}, 20)[0], together[s]) << "prompt " << s;
  }
}

struct LayoutCase {
  DType dtype;
  bool tied;
  int shards;
};

class CheckpointLayouts : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(CheckpointLayouts, LoadAndMatchTheFp32Model) {
  const auto c = GetParam();
  TinyLlamaSpec spec;
  spec.tie_word_embeddings = c.tied;
  spec.num_kv_heads = 2;
  auto ref_dir = write_tiny_llama(test::scratch_dir("f32"), spec);
  spec.dtype = c.dtype;
  spec.shards = c.shards;
  auto dir = write_tiny_llama(test::scratch_dir("case"), spec);
  Loaded ref = load(ref_dir), l = load(dir);
  const auto ids = some_ids(12, spec.vocab_size, 6);
  const auto a = prefill_logits(*l.model, ids), b = prefill_logits(*ref.model, ids);
  // Same random values rounded to the stored dtype: logits agree to its precision.
  const double tol = c.dtype == DType::F32 ? 1e-6 : c.dtype == DType::F16 ? 5e-3 : 3e-2;
  for (size_t p = 0; p < ids.size(); ++p) expect_rel_close(a[p], b[p], tol, "position " + std::to_string(p));
}

INSTANTIATE_TEST_SUITE_P(All, CheckpointLayouts,
                         ::testing::Values(LayoutCase{DType::F32, true, 1}, LayoutCase{DType::F32, false, 3},
                                           LayoutCase{DType::F16, false, 1}, LayoutCase{DType::F16, true, 2},
                                           LayoutCase{DType::BF16, false, 2}, LayoutCase{DType::BF16, true, 1}));

TEST(LlamaModel, WrongShapeNamesTheTensor) {
  TinyLlamaSpec spec;
  auto tensors = tiny_llama_tensors(spec);
  for (auto& t : tensors)
    if (t.name == "model.layers.1.mlp.up_proj.weight") {
      t.shape = {spec.intermediate_size - 1, spec.hidden_size};
      t.values.resize(size_t(t.shape[0] * t.shape[1]));
    }
  auto dir = test::scratch_dir("bad");
  write_safetensors(dir / "model.safetensors", tensors);
  std::ofstream(dir / "config.json") << tiny_llama_config_json(spec);
  try {
    load(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("model.layers.1.mlp.up_proj.weight"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("[159, 64]"));
  }
}

TEST(LlamaModel, UntiedCheckpointWithoutLmHeadIsRefused) {
  TinyLlamaSpec spec;
  spec.tie_word_embeddings = true;  // writes no lm_head ...
  auto dir = write_tiny_llama(test::scratch_dir("nohead"), spec);
  spec.tie_word_embeddings = false;  // ... but the config says untied
  std::ofstream(dir / "config.json") << tiny_llama_config_json(spec);
  EXPECT_THROW(load(dir), Error);
}

TEST(LlamaModel, TokenOutsideVocabularyIsAnError) {
  TinyLlamaSpec spec;
  Loaded l = load(write_tiny_llama(test::scratch_dir("ckpt"), spec));
  EXPECT_THROW(step_logits(*l.model, spec.vocab_size, 0), Error);
  EXPECT_THROW(step_logits(*l.model, 5, 128), Error);  // position past the context
}

}  // namespace
}  // namespace sspan
