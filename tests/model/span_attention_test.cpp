// Block-sparse attention over the blocked span encoding equals dense attention with the
// equivalent boolean mask, for random spans, block sizes, GQA ratios and lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/ops.h"
#include "sspan/span.h"

namespace sspan::cpu {
namespace {

struct Problem {
  int slots = 2, kv_heads, q_heads, max_ctx, D;
  std::vector<float> k, v;  // [slots][Hkv][C][D]
  KvLayerView view() const { return {k.data(), v.data(), slots, kv_heads, max_ctx, D}; }
};

Problem make_problem(std::mt19937& rng, int kv_heads, int group, int max_ctx, int D) {
  Problem p{2, kv_heads, kv_heads * group, max_ctx, D, {}, {}};
  std::normal_distribution<float> d(0.f, 1.f);
  p.k.resize(size_t(p.slots) * kv_heads * max_ctx * D);
  p.v.resize(p.k.size());
  for (auto& x : p.k) x = d(rng);
  for (auto& x : p.v) x = d(rng);
  return p;
}

// Masked softmax attention in double over an explicit boolean mask [t + 1].
std::vector<double> reference(const Problem& p, const float* q, int slot, const std::vector<bool>& mask) {
  const int group = p.q_heads / p.kv_heads;
  std::vector<double> out(size_t(p.q_heads) * p.D, 0.0);
  for (int h = 0; h < p.q_heads; ++h) {
    const int hk = h / group;
    std::vector<double> s(mask.size(), -INFINITY);
    double mx = -INFINITY;
    for (size_t t = 0; t < mask.size(); ++t) {
      if (!mask[t]) continue;
      const float* kr = p.view().k_row(slot, hk, int(t));
      double acc = 0;
      for (int i = 0; i < p.D; ++i) acc += double(q[h * p.D + i]) * kr[i];
      s[t] = acc / std::sqrt(double(p.D));
      mx = std::max(mx, s[t]);
    }
    double den = 0;
    for (size_t t = 0; t < mask.size(); ++t)
      if (mask[t]) den += std::exp(s[t] - mx);
    for (size_t t = 0; t < mask.size(); ++t) {
      if (!mask[t]) continue;
      const double w = std::exp(s[t] - mx) / den;
      const float* vr = p.view().v_row(slot, hk, int(t));
      for (int i = 0; i < p.D; ++i) out[size_t(h) * p.D + size_t(i)] += w * vr[i];
    }
  }
  return out;
}

// Random clustered span: ranges before tail_start, then the tail [tail_start, t].
std::vector<PosRange> random_ranges(std::mt19937& rng, int tail_start) {
  std::vector<PosRange> r;
  std::uniform_int_distribution<int> len(1, 40), gap(0, 60);
  int p = gap(rng) % 3 == 0 ? 0 : gap(rng);
  while (p < tail_start) {
    const int e = std::min(tail_start, p + len(rng));
    r.push_back({p, e});
    p = e + 1 + gap(rng);
  }
  return r;
}

TEST(SpanAttention, EqualsDenseAttentionWithTheEquivalentMask) {
  std::mt19937 rng(7);
  const int block_sizes[] = {16, 32, 64, 128, 256};
  int cases = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int B = block_sizes[trial % 5];
    const int group = (trial / 5) % 3 == 0 ? 1 : (trial % 2 ? 4 : 2);
    const int kv_heads = 1 + trial % 2;
    const int D = trial % 3 == 0 ? 64 : 32;
    const int max_ctx = 700;
    Problem p = make_problem(rng, kv_heads, group, max_ctx, D);
    const int n = 3;
    SpanBatch span;
    span.reset(B);
    std::vector<int32_t> slot(n);
    std::vector<std::vector<bool>> masks;
    for (int r = 0; r < n; ++r) {
      slot[r] = r % 2;
      const int t = std::uniform_int_distribution<int>(0, max_ctx - 1)(rng);  // lengths not multiples of B
      const int tail = std::uniform_int_distribution<int>(0, t)(rng);
      auto ranges = random_ranges(rng, tail);
      span.add_row(ranges, tail, t);
      std::vector<bool> m(size_t(t) + 1, false);
      for (const auto& rg : ranges)
        for (int i = rg.begin; i < rg.end; ++i) m[size_t(i)] = true;
      for (int i = tail; i <= t; ++i) m[size_t(i)] = true;
      masks.push_back(m);
    }
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> q(size_t(n) * p.q_heads * D), out(q.size(), NAN);
    for (auto& x : q) x = d(rng);
    span_attention(q.data(), p.view(), slot.data(), span, out.data(), n, p.q_heads);
    for (int r = 0; r < n; ++r) {
      auto want = reference(p, &q[size_t(r) * p.q_heads * D], slot[r], masks[size_t(r)]);
      for (size_t i = 0; i < want.size(); ++i) {
        const float got = out[size_t(r) * p.q_heads * D + i];
        ASSERT_FALSE(std::isnan(got));
        ASSERT_NEAR(got, want[i], 1e-5 * std::max(1.0, std::abs(want[i])))
            << "trial " << trial << " B " << B << " group " << group << " row " << r << " elem " << i;
      }
      ++cases;
    }
  }
  EXPECT_EQ(cases, 180);
}

TEST(SpanAttention, DenseRowsEqualPlainCausalAttention) {
  std::mt19937 rng(8);
  Problem p = make_problem(rng, 2, 2, 300, 32);
  const int n = 4;
  SpanBatch span;
  span.reset(64);
  std::vector<int32_t> slot = {0, 1, 0, 1}, pos = {0, 63, 64, 299};
  for (int r = 0; r < n; ++r) span.add_dense_row(pos[r]);
  std::vector<float> q(size_t(n) * p.q_heads * 32), out(q.size());
  std::normal_distribution<float> d(0.f, 1.f);
  for (auto& x : q) x = d(rng);
  span_attention(q.data(), p.view(), slot.data(), span, out.data(), n, p.q_heads);
  for (int r = 0; r < n; ++r) {
    auto want = reference(p, &q[size_t(r) * p.q_heads * 32], slot[r], std::vector<bool>(size_t(pos[r]) + 1, true));
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(out[size_t(r) * p.q_heads * 32 + i], want[i], 1e-5 * std::max(1.0, std::abs(want[i])));
  }
}

TEST(SpanAttention, AllPositionsListedAsBlocksEqualsDenseTail) {
  // The same attended set given as blocks or as a dense tail gives the same output.
  std::mt19937 rng(9);
  Problem p = make_problem(rng, 1, 4, 200, 64);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> q(size_t(p.q_heads) * 64);
  for (auto& x : q) x = d(rng);
  const int t = 150;
  SpanBatch a, b;
  a.reset(32);
  a.add_dense_row(t);
  b.reset(32);
  b.add_row({{0, 140}}, 140, t);
  std::vector<float> oa(q.size()), ob(q.size());
  int32_t slot = 0;
  span_attention(q.data(), p.view(), &slot, a, oa.data(), 1, p.q_heads);
  span_attention(q.data(), p.view(), &slot, b, ob.data(), 1, p.q_heads);
  for (size_t i = 0; i < q.size(); ++i) ASSERT_NEAR(oa[i], ob[i], 1e-5 * std::max(1.f, std::abs(oa[i])));
}

}  // namespace
}  // namespace sspan::cpu
