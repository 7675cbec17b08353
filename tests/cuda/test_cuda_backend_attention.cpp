// Attention through the CUDA backend against the CPU backend: causal prefill of dense
// prompt rows (tensor-core kernel, chunked prompts included), decode steps with spans
// (block-sparse kernel), and decode steps replayed from a captured CUDA graph.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend_pair.h"
#include "span_fixture.h"

namespace sspan::test {
namespace {

constexpr int kHq = 8, kHkv = 2, kD = 128, kCtx = 512, kSlots = 3;

class CudaAttentionTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { SSPAN_REQUIRE_CUDA(); }
  DType dt() const { return GetParam(); }

  // One step on `pair`: append fresh k/v for its rows, then attention; returns both outputs.
  void attention_step(BackendPair& pair, const std::vector<int32_t>& pos, const std::vector<int32_t>& slot,
                      const SpanBatch* span, const char* what) {
    const int n = int(pos.size());
    std::vector<int32_t> tokens(size_t(n), 1);
    auto q = pair.activation({n, kHq, kD}, random_values(rng_, size_t(n) * kHq * kD, dt(), 2.f));
    auto k = pair.activation({n, kHkv, kD}, random_values(rng_, size_t(n) * kHkv * kD, dt()));
    auto v = pair.activation({n, kHkv, kD}, random_values(rng_, size_t(n) * kHkv * kD, dt()));
    auto out = pair.activation({n, kHq, kD});
    pair.set_step(StepBatch{tokens, pos, slot, span, {}});
    for (Backend* b : {pair.cpu.get(), pair.gpu.get()}) {
      const bool gpu = b == pair.gpu.get();
      b->kv_append(0, gpu ? k.gpu : k.cpu, gpu ? v.gpu : v.cpu, n);
      b->attention(0, gpu ? q.gpu : q.cpu, gpu ? out.gpu : out.cpu, n);
    }
    expect_close(pair.gpu_values(out), pair.cpu_values(out), dt(), what);
  }

  std::mt19937 rng_{99};
};

std::vector<int32_t> iota_from(int first, int count) {
  std::vector<int32_t> v(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) v[size_t(i)] = first + i;
  return v;
}

TEST_P(CudaAttentionTest, CausalPrefillChunkedThenSparseDecode) {
  BackendPair pair(dt());
  pair.alloc_kv_cache({1, kSlots, kHkv, kCtx, kD});
  // Three prompts in one step (100, 70 and 50 rows), then the third continued by 80 rows.
  std::vector<int32_t> pos, slot;
  for (auto [s, len] : {std::pair{0, 100}, {1, 70}, {2, 50}}) {
    for (int32_t p : iota_from(0, len)) {
      pos.push_back(p);
      slot.push_back(s);
    }
  }
  attention_step(pair, pos, slot, nullptr, "prefill of three prompts");
  attention_step(pair, iota_from(50, 80), std::vector<int32_t>(80, 2), nullptr, "chunked prefill continuation");

  // Decode rows with spans over what the prefill wrote.
  SpanBatch span;
  span.reset(16);
  const std::vector<int32_t> dpos{100, 70, 130}, dslot{0, 1, 2};
  for (size_t r = 0; r < dpos.size(); ++r) {
    const int tail_start = dpos[r] - 5;
    span.add_row(random_clusters(rng_, tail_start, 16, 0.5), tail_start, dpos[r]);
  }
  attention_step(pair, dpos, dslot, &span, "sparse decode");
}

TEST_P(CudaAttentionTest, GraphReplayMatchesEagerAndCpu) {
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

    const StepBatch sb{tokens, pos, slot, &span, {}};
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
