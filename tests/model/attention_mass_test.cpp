// The attention op's mass output (per KV head, summed over its group) against float64,
// per-(row, KV head) attended ranges against the masked reference, and the `recycled`
// policy's spans against a float64 top-k computed from the same q and K.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "sspan/span.h"

namespace sspan::cpu {
namespace {

struct Kv {
  int slots, kv_heads, max_ctx, D;
  std::vector<float> k, v;  // [slots][Hkv][C][D]
  KvLayerView view() const { return {k.data(), v.data(), slots, kv_heads, max_ctx, D}; }
};

Kv make_kv(std::mt19937& rng, int slots, int kv_heads, int max_ctx, int D) {
  Kv p{slots, kv_heads, max_ctx, D, {}, {}};
  std::normal_distribution<float> d(0.f, 1.f);
  p.k.resize(size_t(slots) * kv_heads * max_ctx * D);
  p.v.resize(p.k.size());
  for (auto& x : p.k) x = 2.f * d(rng);  // spread scores: distinct masses
  for (auto& x : p.v) x = d(rng);
  return p;
}

std::vector<float> random_q(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> q(n);
  for (auto& x : q) x = d(rng);
  return q;
}

// mass[key], key in [0, t]: softmax over [0, t] of q_g . k / sqrt(D), summed over the G
// query heads of KV head hk, in double.
std::vector<double> reference_mass(const Kv& p, const float* q_row, int group, int slot, int hk, int t) {
  std::vector<double> mass(size_t(t) + 1, 0.0);
  for (int g = 0; g < group; ++g) {
    const float* q = q_row + size_t(hk * group + g) * p.D;
    std::vector<double> s(size_t(t) + 1);
    double mx = -INFINITY;
    for (int j = 0; j <= t; ++j) {
      const float* k = p.view().k_row(slot, hk, j);
      double acc = 0;
      for (int i = 0; i < p.D; ++i) acc += double(q[i]) * k[i];
      s[size_t(j)] = acc / std::sqrt(double(p.D));
      mx = std::max(mx, s[size_t(j)]);
    }
    double den = 0;
    for (double x : s) den += std::exp(x - mx);
    for (int j = 0; j <= t; ++j) mass[size_t(j)] += std::exp(s[size_t(j)] - mx) / den;
  }
  return mass;
}

TEST(AttentionMass, TheOpsMassEqualsFloat64AndRecordingLeavesTheOutputAlone) {
  std::mt19937 rng(11);
  for (const int group : {1, 3, 4, 6}) {
    const int Hkv = 2, Hq = Hkv * group, D = 32, C = 700;
    const Kv kv = make_kv(rng, 3, Hkv, C, D);
   // Several rows (one task per row and KV head), and one long row alone (its chunks split
   // over the threads).
   for (const bool alone : {false, true}) {
    const std::vector<int32_t> pos = alone ? std::vector<int32_t>{699} : std::vector<int32_t>{0, 37, 699, 300, 5};
    const std::vector<int32_t> slot = alone ? std::vector<int32_t>{2} : std::vector<int32_t>{0, 1, 2, 0, 1};
    const std::vector<int32_t> record =  // rows 0, 1, 2 and 4 recorded
        alone ? std::vector<int32_t>{0} : std::vector<int32_t>{0, 1, 2, -1, 3};
    const int n = int(pos.size());
    const auto q = random_q(rng, size_t(n) * Hq * D);
    AttendedRanges ranges;
    ranges.assign_dense(pos);
    for (const int chunk : {32, 256}) {
      for (const int threads : {1, 2}) {
        set_num_threads(threads);
        const AttentionConfig config{best_isa(), chunk};
        AttentionWorkspace ws;
        std::vector<float> plain(size_t(n) * Hq * D), with(plain.size());
        span_attention(q.data(), kv.view(), slot.data(), ranges, plain.data(), n, Hq, config, ws);
        std::vector<float> mass(size_t(4) * Hkv * C, -1.f);
        const AttentionMass out{record.data(), mass.data(), int64_t(Hkv) * C, C};
        span_attention(q.data(), kv.view(), slot.data(), ranges, with.data(), n, Hq, config, ws, &out);
        EXPECT_EQ(plain, with) << "recording the mass must not change the output";
        for (int r = 0; r < n; ++r) {
          if (record[size_t(r)] < 0) continue;
          for (int h = 0; h < Hkv; ++h) {
            const auto want = reference_mass(kv, q.data() + size_t(r) * Hq * D, group, slot[size_t(r)], h, pos[size_t(r)]);
            const float* got = mass.data() + size_t(record[size_t(r)]) * Hkv * C + size_t(h) * C;
            double sum = 0;
            for (int j = 0; j <= pos[size_t(r)]; ++j) {
              ASSERT_TRUE(std::isfinite(got[j]));
              ASSERT_NEAR(got[j], want[size_t(j)], 1e-5 * group + 1e-4 * want[size_t(j)])
                  << "G=" << group << " chunk=" << chunk << " row " << r << " head " << h << " key " << j;
              sum += got[j];
            }
            EXPECT_NEAR(sum, group, 1e-4 * group);
          }
        }
      }
    }
   }
  }
  set_num_threads(0);
}

TEST(AttentionMass, PerHeadRangesAttendEachHeadsOwnSet) {
  std::mt19937 rng(5);
  const int Hkv = 2, G = 2, Hq = Hkv * G, D = 16, C = 200;
  const Kv kv = make_kv(rng, 1, Hkv, C, D);
  const int32_t t = 150;
  // Row 0 per head: head 0 attends [0, 10) + [100, 151), head 1 [50, 60) + [140, 151);
  // row 1 (shared by both heads) the dense row at 120 (another slot would do too).
  SpanBatch span, heads;
  span.reset(16);
  heads.reset(16);
  span.add_dense_row(t);
  span.add_dense_row(120);
  heads.add_row({{0, 10}}, 100, t);
  heads.add_row({{50, 60}}, 140, t);
  AttendedRanges per_head;
  const std::vector<int32_t> head_row = {0, 1, -1, -1};
  per_head.assign_per_head(span, &heads, head_row, Hkv);
  ASSERT_EQ(per_head.rows(), 4);
  const auto q = random_q(rng, size_t(2) * Hq * D);
  const std::vector<int32_t> slot = {0, 0};
  std::vector<float> out(size_t(2) * Hq * D);
  AttentionWorkspace ws;
  span_attention(q.data(), kv.view(), slot.data(), per_head, out.data(), 2, Hq, AttentionConfig{best_isa()}, ws);
  // Each (row, KV head) against the shared-row op over that head's set alone.
  for (int r = 0; r < 2; ++r)
    for (int h = 0; h < Hkv; ++h) {
      SpanBatch one;
      one.reset(16);
      if (r == 0)
        h == 0 ? one.add_row({{0, 10}}, 100, t) : one.add_row({{50, 60}}, 140, t);
      else
        one.add_dense_row(120);
      std::vector<float> want(size_t(Hq) * D);
      span_attention(q.data() + size_t(r) * Hq * D, kv.view(), slot.data(), one, want.data(), 1, Hq);
      for (int g = 0; g < G; ++g)
        for (int i = 0; i < D; ++i) {
          const size_t e = size_t(h * G + g) * D + size_t(i);
          ASSERT_NEAR(out[size_t(r) * Hq * D + e], want[e], 1e-6) << "row " << r << " head " << h;
        }
    }
}

// The k keys of highest float64 mass, ascending (ties cannot matter: the test skips heads
// whose k-th and (k+1)-th masses are closer than float rounding).
std::vector<int32_t> reference_top_k(const std::vector<double>& mass, int k, bool* clear_gap) {
  std::vector<int32_t> order(mass.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return mass[size_t(a)] > mass[size_t(b)]; });
  const size_t n = std::min(order.size(), size_t(k));
  *clear_gap = n == order.size() || mass[size_t(order[n - 1])] - mass[size_t(order[n])] > 1e-5;
  std::vector<int32_t> top(order.begin(), order.begin() + std::ptrdiff_t(n));
  std::sort(top.begin(), top.end());
  return top;
}

TEST(RecycledPolicy, SpansAreTheFloat64TopKOfTheFullStepPlusEveryLaterPosition) {
  std::mt19937 rng(3);
  const int L = 2, Hkv = 2, G = 2, Hq = Hkv * G, D = 16, C = 400;
  std::vector<Kv> layers;
  for (int l = 0; l < L; ++l) layers.push_back(make_kv(rng, 1, Hkv, C, D));
  for (const int block : {16, 64, 256}) {
    for (const int k : {1, 7, 40, 1000}) {
      const int stride = 5, prompt = 120;
      auto tr = SpanPolicy::parse(fmt::format("recycled:k={},stride={},block={}", k, stride, block))->start();
      for (int t = 0; t < prompt; ++t) {
        tr->push("x", true);
        EXPECT_FALSE(tr->last_per_head());
        EXPECT_FALSE(tr->wants_mass()) << "prompt rows are causal and record nothing";
      }
      int full = -1, checked = 0;
      std::vector<std::vector<int32_t>> want_heads;  // [L * Hkv]
      for (int t = prompt; t < prompt + 3 * stride + 2; ++t) {
        tr->push("y", false);
        const bool expect_full = full < 0 || t - full >= stride;
        ASSERT_EQ(tr->wants_mass(), expect_full) << "t=" << t;
        ASSERT_EQ(tr->last_per_head(), !expect_full);
        if (expect_full) {
          // The full step: this token's mass from the op, per layer.
          full = t;
          EXPECT_EQ(tr->last_count(), t + 1);
          const auto q = random_q(rng, size_t(Hq) * D);
          const int32_t pos = t, slot = 0, rec = 0;
          AttendedRanges ranges;
          ranges.assign_dense({&pos, 1});
          std::vector<float> mass(size_t(L) * Hkv * (size_t(t) + 1)), out(size_t(Hq) * D);
          want_heads.clear();
          for (int l = 0; l < L; ++l) {
            AttentionWorkspace ws;
            const AttentionMass m{&rec, mass.data() + size_t(l) * Hkv * (size_t(t) + 1), 0, t + 1};
            span_attention(q.data(), layers[size_t(l)].view(), &slot, ranges, out.data(), 1, Hq,
                           AttentionConfig{best_isa(), 64}, ws, &m);
            for (int h = 0; h < Hkv; ++h) {
              bool clear = false;
              want_heads.push_back(
                  reference_top_k(reference_mass(layers[size_t(l)], q.data(), G, 0, h, t), k, &clear));
              if (!clear) want_heads.back().assign(1, -1);  // too close to call: not checked
            }
          }
          tr->take_mass(t, mass, L, Hkv);
          continue;
        }
        SpanBatch heads;
        heads.reset(block);
        tr->append_last_heads(heads);
        heads.validate();
        ASSERT_EQ(heads.rows(), L * Hkv);
        for (int i = 0; i < L * Hkv; ++i) {
          EXPECT_EQ(heads.pos[size_t(i)], t);
          if (want_heads[size_t(i)] == std::vector<int32_t>{-1}) continue;
          std::vector<PosRange> want;
          for (const int32_t p : want_heads[size_t(i)]) want.push_back({p, p + 1});
          want.push_back({full + 1, t + 1});
          std::vector<PosRange> merged;
          for (const PosRange& r : want)
            if (!merged.empty() && merged.back().end == r.begin)
              merged.back().end = r.end;
            else
              merged.push_back(r);
          ASSERT_EQ(heads.row_ranges(i), merged) << "k=" << k << " block " << block << " head row " << i;
          ++checked;
        }
        EXPECT_EQ(tr->last_count(), int64_t(std::min(k, full + 1)) + (t - full));
        EXPECT_EQ(tr->last_sparse(), k < full + 1);
      }
      EXPECT_GT(checked, 0);
    }
  }
}

}  // namespace
}  // namespace sspan::cpu
