// Attention through the CUDA backend against the CPU backend, every element within the
// dtype's tolerance: causal prefill of dense prompt rows (tensor-core kernel, chunked
// prompts included), decode steps with spans (block-sparse kernel), steps that mix both,
// every head dim, and decode steps replayed from a captured CUDA graph. Each step asserts
// which kernel served which rows.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend_pair.h"
#include "span_fixture.h"

namespace sspan::test {
namespace {

constexpr int kHq = 8, kHkv = 2, kCtx = 512, kSlots = 3;

struct Routed {
  int64_t prefill_rows, decode_rows;
};

// One step's rows: where each is, how it attends, and (Sparse rows) its span.
struct StepRows {
  std::vector<int32_t> pos, slot;
  std::vector<RowMode> mode;
  SpanBatch span;
  explicit StepRows(int block_size = 16) { span.reset(block_size); }
  void dense_run(int s, int first, int count) {
    for (int i = 0; i < count; ++i) {
      pos.push_back(first + i);
      slot.push_back(s);
      mode.push_back(RowMode::Dense);
      span.add_dense_row(first + i);
    }
  }
  void sparse(std::mt19937& rng, int s, int t, int tail_len) {
    pos.push_back(t);
    slot.push_back(s);
    mode.push_back(RowMode::Sparse);
    const int tail_start = std::max(0, t + 1 - tail_len);
    span.add_row(random_clusters(rng, tail_start, 16, 0.5), tail_start, t);
  }
};

class CudaAttentionTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { SSPAN_REQUIRE_CUDA(); }
  DType dt() const { return GetParam(); }

  // One step on `pair`: append fresh k/v for its rows, then attention; compares both
  // outputs and returns how the GPU routed the rows.
  Routed attention_step(BackendPair& pair, const StepRows& rows, const char* what, int head_dim = 128,
                        int q_heads = kHq, int kv_heads = kHkv) {
    const int n = int(rows.pos.size());
    std::vector<int32_t> tokens(size_t(n), 1);
    const int D = head_dim;
    auto q = pair.activation({n, q_heads, D}, random_values(rng_, size_t(n) * q_heads * D, dt(), 2.f));
    auto k = pair.activation({n, kv_heads, D}, random_values(rng_, size_t(n) * kv_heads * D, dt()));
    auto v = pair.activation({n, kv_heads, D}, random_values(rng_, size_t(n) * kv_heads * D, dt()));
    auto out = pair.activation({n, q_heads, D});
    const cuda::AttentionRouting before = cuda::attention_routing();
    pair.set_step(StepBatch{tokens, rows.pos, rows.slot, rows.mode, &rows.span, {}});
    const cuda::AttentionRouting after = cuda::attention_routing();
    for (Backend* b : {pair.cpu.get(), pair.gpu.get()}) {
      const bool gpu = b == pair.gpu.get();
      b->kv_append(0, gpu ? k.gpu : k.cpu, gpu ? v.gpu : v.cpu, n);
      b->attention(0, gpu ? q.gpu : q.cpu, gpu ? out.gpu : out.cpu, n);
    }
    expect_close(pair.gpu_values(out), pair.cpu_values(out), dt(), what);
    return {after.prefill_rows - before.prefill_rows, after.decode_rows - before.decode_rows};
  }

  std::mt19937 rng_{99};
};

TEST_P(CudaAttentionTest, CausalPrefillChunkedThenSparseDecode) {
  BackendPair pair(dt());
  pair.alloc_kv_cache({1, kSlots, kHkv, kCtx, 128});
  // Three prompts in one step (100, 70 and 50 rows): all prefill.
  StepRows prompts;
  prompts.dense_run(0, 0, 100);
  prompts.dense_run(1, 0, 70);
  prompts.dense_run(2, 0, 50);
  Routed r = attention_step(pair, prompts, "prefill of three prompts");
  EXPECT_EQ(r.prefill_rows, 220);
  EXPECT_EQ(r.decode_rows, 0);
  // The third prompt continued by 80 rows (a second prefill pass): prefill again.
  StepRows more;
  more.dense_run(2, 50, 80);
  r = attention_step(pair, more, "chunked prefill continuation");
  EXPECT_EQ(r.prefill_rows, 80);
  EXPECT_EQ(r.decode_rows, 0);
  // Decode rows with spans over what the prefill wrote: the decode kernel.
  StepRows decode;
  decode.sparse(rng_, 0, 100, 5);
  decode.sparse(rng_, 1, 70, 5);
  decode.sparse(rng_, 2, 130, 5);
  r = attention_step(pair, decode, "sparse decode");
  EXPECT_EQ(r.prefill_rows, 0);
  EXPECT_EQ(r.decode_rows, 3);
}

TEST_P(CudaAttentionTest, AMixedStepLaunchesBothKernels) {
  BackendPair pair(dt());
  pair.alloc_kv_cache({1, kSlots, kHkv, kCtx, 128});
  StepRows first;
  first.dense_run(1, 0, 60);
  first.dense_run(2, 0, 30);
  attention_step(pair, first, "prompts of slots 1 and 2");
  // Slot 0: a 40-row prompt whose last 6 rows are a sparse line, then 20 dense rows; slot
  // 1: a sparse decode row; slot 2: a dense decode row.
  StepRows mixed;
  mixed.dense_run(0, 0, 40);
  for (int t = 40; t < 46; ++t) mixed.sparse(rng_, 0, t, t - 35);
  mixed.dense_run(0, 46, 20);
  mixed.sparse(rng_, 1, 60, 8);
  mixed.dense_run(2, 30, 1);
  const Routed r = attention_step(pair, mixed, "mixed step");
  EXPECT_EQ(r.prefill_rows, 60);
  EXPECT_EQ(r.decode_rows, 8);
}

TEST_P(CudaAttentionTest, EveryHeadDimPrefillAndDecode) {
  for (int d : {32, 48, 64, 80, 96, 128}) {
    SCOPED_TRACE("head_dim " + std::to_string(d));
    BackendPair pair(dt());
    pair.alloc_kv_cache({1, 2, 2, 300, d});
    StepRows prompt;
    prompt.dense_run(0, 0, 150);
    prompt.dense_run(1, 0, 17);
    Routed r = attention_step(pair, prompt, "prefill", d, 6, 2);
    EXPECT_EQ(r.prefill_rows, 167);
    StepRows decode(64);
    decode.sparse(rng_, 0, 150, 20);
    decode.dense_run(1, 17, 1);
    r = attention_step(pair, decode, "decode", d, 6, 2);
    EXPECT_EQ(r.decode_rows, 2);
  }
}

TEST_P(CudaAttentionTest, GraphReplayMatchesEagerAndCpu) {
  constexpr int kD = 128;
  CudaBackendOptions eager_opts;
  eager_opts.use_graphs = false;
  BackendPair pair(dt());
  auto eager = make_cuda_backend(dt(), 0, eager_opts);
  const KvCacheShape kv{1, kSlots, kHkv, kCtx, kD};
  pair.alloc_kv_cache(kv);
  eager->alloc_kv_cache(kv);
  pair.gpu->reserve_steps(8, 256);
  eager->reserve_steps(8, 256);

  const int n = kSlots;
  std::vector<int32_t> tokens(n, 1), slot{2, 0, 1};
  const std::vector<RowMode> mode(n, RowMode::Sparse);
  auto q = pair.activation({n, kHq, kD});
  auto k = pair.activation({n, kHkv, kD});
  auto v = pair.activation({n, kHkv, kD});
  auto out = pair.activation({n, kHq, kD});
  Tensor eq = eager->alloc({n, kHq, kD}, dt()), ek = eager->alloc({n, kHkv, kD}, dt()),
         ev = eager->alloc({n, kHkv, kD}, dt()), eout = eager->alloc({n, kHq, kD}, dt());

  // 40 decode steps from an empty cache; spans change every step, so a replayed graph
  // must read them from the step buffers.
  for (int step = 0; step < 40; ++step) {
    std::vector<int32_t> pos(n, step);
    SpanBatch span;
    span.reset(16);
    for (int r = 0; r < n; ++r) {
      const int tail_start = std::max(0, step - 3);
      span.add_row(random_clusters(rng_, tail_start, 4, 0.5), tail_start, step);
    }
    const auto qv = random_values(rng_, size_t(n) * kHq * kD, dt(), 2.f);
    const auto kvals = random_values(rng_, size_t(n) * kHkv * kD, dt());
    const auto vvals = random_values(rng_, size_t(n) * kHkv * kD, dt());
    for (auto [t, vals] : {std::pair{&q, &qv}, {&k, &kvals}, {&v, &vvals}}) {
      std::copy(vals->begin(), vals->end(), t->cpu.template ptr<float>());
      upload_as(dt(), *vals, t->gpu.data);
    }
    upload_as(dt(), qv, eq.data);
    upload_as(dt(), kvals, ek.data);
    upload_as(dt(), vvals, ev.data);
    poison(dt(), out.gpu.data, size_t(out.gpu.numel()));
    poison(dt(), eout.data, size_t(eout.numel()));

    const StepBatch sb{tokens, pos, slot, mode, &span, {}};
    pair.cpu->set_step(sb);
    pair.cpu->kv_append(0, k.cpu, v.cpu, n);
    pair.cpu->attention(0, q.cpu, out.cpu, n);
    pair.gpu->forward_step(sb, [&] {
      pair.gpu->kv_append(0, k.gpu, v.gpu, n);
      pair.gpu->attention(0, q.gpu, out.gpu, n);
    });
    eager->forward_step(sb, [&] {
      eager->kv_append(0, ek, ev, n);
      eager->attention(0, eq, eout, n);
    });
    const std::vector<float> graph_out = pair.gpu_values(out);
    EXPECT_EQ(graph_out, download_as(dt(), eout.data, size_t(eout.numel()))) << "step " << step;
    expect_close(graph_out, pair.cpu_values(out), dt(), "graph step " + std::to_string(step));
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaAttentionTest, ::testing::Values(DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace sspan::test
