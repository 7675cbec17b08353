// The whole forward pass (src/model/llama.cpp) on the CUDA backend against the CPU
// backend, on a tiny random checkpoint stored in the device dtype (so both use the same
// weights): batched prefill of two prompts, then decode steps of both sequences, dense and
// with spans, replayed from captured graphs. Activations are rounded to fp16/bf16 after
// every op on the GPU, so the logits get a looser bound than a single op: an error norm
// of 1e-2 (fp16) / 5e-2 (bf16), and every logit within 5x that of (|ref| + rms).
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <vector>

#include "cuda_test_util.h"
#include "model/llama.h"
#include "model_pair.h"
#include "span_fixture.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "support/test_paths.h"

namespace sspan::test {
namespace {

class CudaModelTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { SSPAN_REQUIRE_CUDA(); }
};

TEST_P(CudaModelTest, LogitsMatchTheCpuBackend) {
  const DType dt = GetParam();
  TinyLlamaSpec spec;
  spec.hidden_size = 256;
  spec.num_heads = 4;  // head_dim 64
  spec.num_kv_heads = 2;
  spec.intermediate_size = 512;
  spec.dtype = dt;
  spec.seed = 7;
  const auto dir = write_tiny_llama(scratch_dir("cuda_model"), spec);
  const ModelConfig config = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  auto cpu_be = make_cpu_backend(2);
  auto gpu_be = make_cuda_backend(dt, 0);
  LlamaModel cpu(config, ckpt, *cpu_be), gpu(config, ckpt, *gpu_be);
  for (LlamaModel* m : {&cpu, &gpu}) m->allocate(72, 72, 2, 256);  // the prefill step holds 40 + 25 rows
  const int V = config.vocab_size;
  const double bound = dt == DType::BF16 ? 5e-2 : 1e-2;
  std::mt19937 rng(3);

  auto compare = [&](const StepBatch& step, const std::string& what) {
    forward_and_compare(cpu, gpu, step, bound, what);
  };

  // Prefill: prompts of 40 and 25 tokens in one step (slots 0 and 1).
  std::vector<int32_t> tokens, pos, slot, rows;
  for (auto [s, len] : {std::pair{0, 40}, {1, 25}})
    for (int i = 0; i < len; ++i) {
      tokens.push_back(int32_t(rng() % unsigned(V)));
      pos.push_back(i);
      slot.push_back(s);
    }
  rows.resize(tokens.size());
  std::iota(rows.begin(), rows.end(), 0);
  const std::vector<RowMode> dense(tokens.size(), RowMode::Dense);
  compare({tokens, pos, slot, dense, nullptr, rows}, "prefill");

  // Decode: both sequences one token per step; every third step with spans.
  std::vector<int32_t> next_pos{40, 25}, dslot{0, 1}, drows{0, 1};
  for (int step = 0; step < 12; ++step) {
    std::vector<int32_t> dtok{int32_t(rng() % unsigned(V)), int32_t(rng() % unsigned(V))};
    SpanBatch span;
    span.reset(16);
    for (int r = 0; r < 2; ++r) {
      const int t = next_pos[size_t(r)], tail_start = t - 3;
      span.add_row(random_clusters(rng, tail_start, 8, 0.5), tail_start, t);
    }
    const bool sparse = step % 3 == 2;
    const std::vector<RowMode> mode(2, sparse ? RowMode::Sparse : RowMode::Dense);
    compare({dtok, next_pos, dslot, mode, sparse ? &span : nullptr, drows}, "decode step " + std::to_string(step));
    for (int32_t& p : next_pos) ++p;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaModelTest, ::testing::Values(DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace sspan::test
