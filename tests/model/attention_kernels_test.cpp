// The CPU span-attention kernels: every instruction set this CPU runs (scalar, AVX2,
// AVX-512) and every KV cache type (fp32, fp16, bf16) against a float64 reference on
// random spans; GQA-grouped against per-head; rows split into chunks against one chunk,
// and against themselves under other batches and thread counts; the cache conversion.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/span_attention.h"
#include "cpu/thread_pool.h"
#include "sspan/span.h"

namespace sspan::cpu {
namespace {

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

// A KV cache of `dtype` in the layout of KvLayerView with `block` ([slots][Hkv][C][D] for
// 0), and the fp32 values it holds (what the reference reads) and was made from.
struct Cache {
  int slots, kv_heads, max_ctx, head_dim;
  DType dtype;
  int block;
  std::vector<float> exact;   // fp32 source values
  std::vector<float> stored;  // the stored values, back in fp32
  std::vector<uint8_t> bytes;

  KvLayerView view() const {
    const size_t half = bytes.size() / 2;
    return {bytes.data(), bytes.data() + half, slots, kv_heads, max_ctx, head_dim, dtype, block};
  }
};

// Room for positions [0, max_ctx), in whole blocks.
Cache make_cache(std::mt19937& rng, int slots, int kv_heads, int max_ctx, int D, DType dtype, int block = 0) {
  if (block) max_ctx = (max_ctx + block - 1) / block * block;
  Cache c{slots, kv_heads, max_ctx, D, dtype, block, {}, {}, {}};
  const size_t n = size_t(slots) * kv_heads * max_ctx * D;
  std::normal_distribution<float> normal(0.f, 1.f);
  c.exact.resize(2 * n);  // K then V
  for (auto& x : c.exact) x = normal(rng);
  c.bytes.resize(2 * n * dtype_size(dtype));
  store_kv(c.exact.data(), c.bytes.data(), dtype, int64_t(2 * n), Isa::Scalar);
  c.stored.resize(2 * n);
  for (size_t i = 0; i < 2 * n; ++i) {
    const auto* h = reinterpret_cast<const uint16_t*>(c.bytes.data());
    c.stored[i] = dtype == DType::F32 ? c.exact[i] : dtype == DType::F16 ? half_to_float(h[i]) : bf16_to_float(h[i]);
  }
  return c;
}

// Masked softmax attention in double over each row's decoded ranges, from fp32 K/V
// `kv` ([2][slots][Hkv][C][D]: K then V).
std::vector<double> reference(const std::vector<float>& kv, const Cache& c, const std::vector<float>& q,
                              const std::vector<int32_t>& slot, const SpanBatch& span, int q_heads) {
  const int D = c.head_dim, group = q_heads / c.kv_heads;
  const size_t half = kv.size() / 2;
  std::vector<double> out(size_t(span.rows()) * q_heads * D, 0.0);
  for (int r = 0; r < span.rows(); ++r) {
    const auto ranges = span.row_ranges(r);
    for (int h = 0; h < q_heads; ++h) {
      const float* qh = &q[(size_t(r) * q_heads + h) * D];
      const auto row = [&](int p) { return size_t(c.view().row(slot[size_t(r)], h / group, p)); };
      std::vector<double> s;
      double mx = -INFINITY;
      for (const auto& pr : ranges)
        for (int p = pr.begin; p < pr.end; ++p) {
          double acc = 0;
          for (int i = 0; i < D; ++i) acc += double(qh[i]) * kv[row(p) * D + size_t(i)];
          s.push_back(acc / std::sqrt(double(D)));
          mx = std::max(mx, s.back());
        }
      double den = 0;
      for (double x : s) den += std::exp(x - mx);
      size_t j = 0;
      double* o = &out[(size_t(r) * q_heads + h) * D];
      for (const auto& pr : ranges)
        for (int p = pr.begin; p < pr.end; ++p, ++j)
          for (int i = 0; i < D; ++i) o[i] += std::exp(s[j] - mx) / den * kv[half + row(p) * D + size_t(i)];
    }
  }
  return out;
}

// Random clustered span rows at random positions (lengths not multiples of the block).
SpanBatch random_span(std::mt19937& rng, int block_size, int rows, int max_ctx, std::vector<int32_t>& slot,
                      int slots) {
  SpanBatch span;
  span.reset(block_size);
  slot.clear();
  for (int r = 0; r < rows; ++r) {
    slot.push_back(r % slots);
    const int t = std::uniform_int_distribution<int>(0, max_ctx - 1)(rng);
    const int tail = std::uniform_int_distribution<int>(0, t)(rng);
    std::vector<PosRange> ranges;
    std::uniform_int_distribution<int> len(1, 70), gap(0, 90);
    for (int p = gap(rng); p < tail;) {
      const int e = std::min(tail, p + len(rng));
      ranges.push_back({p, e});
      p = e + 1 + gap(rng);
    }
    span.add_row(ranges, tail, t);
  }
  return span;
}

std::vector<float> random_queries(std::mt19937& rng, int rows, int q_heads, int D) {
  std::vector<float> q(size_t(rows) * q_heads * D);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (auto& x : q) x = normal(rng);
  return q;
}

std::vector<float> run(const std::vector<float>& q, const KvLayerView& kv, const std::vector<int32_t>& slot,
                       const SpanBatch& span, int q_heads, const AttentionConfig& config) {
  AttendedRanges ranges;
  ranges.assign(span);
  AttentionWorkspace ws;
  std::vector<float> out(q.size(), NAN);
  span_attention(q.data(), kv, slot.data(), ranges, out.data(), span.rows(), q_heads, config, ws);
  return out;
}

// Largest |got - want| relative to the largest |want| of the same (row, head) vector, or
// to `floor` when that is larger.
double max_rel_error(const std::vector<float>& got, const std::vector<double>& want, int D, double floor = 1e-30) {
  double worst = 0;
  for (size_t v = 0; v < want.size(); v += size_t(D)) {
    double scale = floor, err = 0;
    for (size_t i = v; i < v + size_t(D); ++i) {
      if (std::isnan(got[i])) return INFINITY;
      scale = std::max(scale, std::abs(want[i]));
      err = std::max(err, std::abs(double(got[i]) - want[i]));
    }
    worst = std::max(worst, err / scale);
  }
  return worst;
}
double max_rel_error(const std::vector<float>& got, const std::vector<float>& want, int D, double floor = 1e-30) {
  return max_rel_error(got, std::vector<double>(want.begin(), want.end()), D, floor);
}

// Every Isa x cache type: against the float64 reference on the values the cache holds
// (the kernel's own error), and against the fp32 values before rounding (the cache's).
TEST(AttentionKernels, EveryIsaAndCacheTypeMatchesTheReference) {
  // Error bounds, relative to the largest element of each output vector:
  constexpr double kKernelTol = 3e-6;                   // fp32 arithmetic, any cache type
  constexpr double kF16CacheTol = 4e-3, kBF16CacheTol = 3e-2;  // ~8 units of the type's rounding
  std::mt19937 rng(11);
  const int head_dims[] = {32, 64, 16, 8, 40, 128};
  int checked = 0;
  for (int trial = 0; trial < 12; ++trial) {
    const int D = head_dims[trial % 6], group = 1 << (trial % 4), kv_heads = 1 + trial % 2;
    const int block = 16 << (trial % 5), max_ctx = 300 + 37 * trial;
    for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
      const int layout_block = trial % 3 == 0 ? 0 : 8 << (trial % 3);  // per-head runs, blocks of 16 or 32
      const Cache cache = make_cache(rng, 2, kv_heads, max_ctx, D, dtype, layout_block);
      std::vector<int32_t> slot;
      const SpanBatch span = random_span(rng, block, 2, max_ctx, slot, 2);
      const auto q = random_queries(rng, 2, kv_heads * group, D);
      const auto on_stored = reference(cache.stored, cache, q, slot, span, kv_heads * group);
      const auto on_exact = reference(cache.exact, cache, q, slot, span, kv_heads * group);
      for (Isa isa : supported_isas()) {
        const auto got = run(q, cache.view(), slot, span, kv_heads * group, {isa});
        const double kernel_err = max_rel_error(got, on_stored, D), cache_err = max_rel_error(got, on_exact, D);
        EXPECT_LE(kernel_err, kKernelTol) << isa_name(isa) << " " << dtype_name(dtype) << " D " << D << " group "
                                          << group << " layout block " << layout_block << " trial " << trial;
        const double cache_tol = dtype == DType::F32 ? kKernelTol : dtype == DType::F16 ? kF16CacheTol : kBF16CacheTol;
        EXPECT_LE(cache_err, cache_tol) << isa_name(isa) << " " << dtype_name(dtype) << " vs the fp32 values, D " << D;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 36);
}

// One pass per KV head serves its whole group: the same as every query head on a private
// copy of its KV head, for groups 1, 2, 4 and 8.
TEST(AttentionKernels, GroupedAttentionEqualsPerHeadAttention) {
  std::mt19937 rng(12);
  for (Isa isa : supported_isas())
    for (int group : {1, 2, 4, 8})
      for (DType dtype : {DType::F32, DType::F16}) {
        const int kv_heads = 2, D = 64, max_ctx = 517, q_heads = kv_heads * group;
        const Cache grouped = make_cache(rng, 2, kv_heads, max_ctx, D, dtype);
        // Per head: KV head h / group copied to head h.
        Cache per_head = grouped;
        per_head.kv_heads = q_heads;
        const size_t es = dtype_size(dtype), row_bytes = size_t(max_ctx) * D * es;
        const size_t n_grouped = grouped.bytes.size() / 2, n_per_head = size_t(2) * q_heads * row_bytes;
        per_head.bytes.assign(2 * n_per_head, 0);
        for (int part = 0; part < 2; ++part)
          for (int s = 0; s < 2; ++s)
            for (int h = 0; h < q_heads; ++h)
              std::memcpy(&per_head.bytes[part * n_per_head + (size_t(s) * q_heads + h) * row_bytes],
                          &grouped.bytes[part * n_grouped + (size_t(s) * kv_heads + h / group) * row_bytes], row_bytes);
        std::vector<int32_t> slot;
        const SpanBatch span = random_span(rng, 64, 4, max_ctx, slot, 2);
        const auto q = random_queries(rng, 4, q_heads, D);
        const auto a = run(q, grouped.view(), slot, span, q_heads, {isa});
        const auto b = run(q, per_head.view(), slot, span, q_heads, {isa});
        EXPECT_LE(max_rel_error(a, b, D), 1e-6) << isa_name(isa) << " group " << group << " " << dtype_name(dtype);
      }
}

// The blocked layout (every KV head of a position block in one run) gives the same bits as
// per-head runs: the same rows in the same order, only elsewhere in memory. Rows with all
// their heads in one pass, and (row, KV head) pairs, both run: with and without the mass.
TEST(AttentionKernels, BlockedLayoutGivesTheBitsOfPerHeadRuns) {
  std::mt19937 rng(15);
  for (Isa isa : supported_isas())
    for (int block : {16, 32}) {
      const int kv_heads = 3, group = 2, q_heads = kv_heads * group, D = 32, max_ctx = 700, slots = 3;
      const Cache flat = make_cache(rng, slots, kv_heads, max_ctx, D, DType::F16);
      Cache blocked = make_cache(rng, slots, kv_heads, max_ctx, D, DType::F16, block);
      // The same rows, moved to their blocked places.
      const size_t es = 2, row_bytes = size_t(D) * es, half_flat = flat.bytes.size() / 2;
      const size_t half_blocked = blocked.bytes.size() / 2;
      for (int part = 0; part < 2; ++part)
        for (int sl = 0; sl < slots; ++sl)
          for (int h = 0; h < kv_heads; ++h)
            for (int p = 0; p < max_ctx; ++p)
              std::memcpy(&blocked.bytes[part * half_blocked + size_t(blocked.view().row(sl, h, p)) * row_bytes],
                          &flat.bytes[part * half_flat + size_t(flat.view().row(sl, h, p)) * row_bytes], row_bytes);
      std::vector<int32_t> slot;
      const SpanBatch span = random_span(rng, 16, 5, max_ctx, slot, slots);
      const auto q = random_queries(rng, 5, q_heads, D);
      const auto a = run(q, flat.view(), slot, span, q_heads, {isa, 128});
      const auto b = run(q, blocked.view(), slot, span, q_heads, {isa, 128});
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(a[i], b[i]) << isa_name(isa) << " block " << block << " element " << i;

      // (row, KV head) pairs: the path that records attention mass.
      AttendedRanges ranges;
      ranges.assign(span);
      AttentionWorkspace ws;
      std::vector<int32_t> record(5, -1);
      record[1] = 0;
      std::vector<float> mass_out(size_t(kv_heads) * max_ctx), c(q.size());
      const AttentionMass mass{record.data(), mass_out.data(), int64_t(kv_heads) * max_ctx, max_ctx};
      span_attention(q.data(), blocked.view(), slot.data(), ranges, c.data(), 5, q_heads, {isa, 128}, ws, &mass);
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(a[i], c[i]) << isa_name(isa) << " block " << block << " pairs, element " << i;
    }
}

// Rows cut into chunks whose states are merged equal one chunk per row; and a row's result
// is the same bits alone (its chunks spread over threads) or in a batch (chunks in order on
// one thread), with one thread or two.
TEST(AttentionKernels, SplitRowsEqualUnsplitRowsAndDoNotDependOnBatchOrThreads) {
  std::mt19937 rng(13);
  const int kv_heads = 2, group = 2, q_heads = kv_heads * group, D = 32, max_ctx = 3000;
  const Cache cache = make_cache(rng, 8, kv_heads, max_ctx, D, DType::F16);
  std::vector<int32_t> slot;
  const SpanBatch batch = random_span(rng, 64, 8, max_ctx, slot, 8);
  const auto q = random_queries(rng, 8, q_heads, D);
  const int saved_threads = num_threads();
  for (Isa isa : supported_isas()) {
    const auto chunked = run(q, cache.view(), slot, batch, q_heads, {isa, 256});
    const auto unsplit = run(q, cache.view(), slot, batch, q_heads, {isa, max_ctx});
    // A long row's output is a mean of many values of size ~1 and so much smaller than
    // they are; its rounding is relative to the values' scale (1), not its own.
    EXPECT_LE(max_rel_error(chunked, unsplit, D, 1.0), 1e-6) << isa_name(isa);

    const size_t per_row = size_t(q_heads) * D;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (int r = 0; r < batch.rows(); ++r) {
        SpanBatch one;
        one.reset(64);
        const auto ranges = batch.row_ranges(r);
        std::vector<PosRange> before_tail(ranges.begin(), ranges.end() - 1);
        one.add_row(before_tail, ranges.back().begin, batch.pos[size_t(r)]);
        const std::vector<float> qr(q.begin() + r * per_row, q.begin() + (r + 1) * per_row);
        const auto alone = run(qr, cache.view(), {slot[size_t(r)]}, one, q_heads, {isa, 256});
        for (size_t i = 0; i < per_row; ++i)
          ASSERT_EQ(alone[i], chunked[r * per_row + i]) << isa_name(isa) << " row " << r << " threads " << threads;
      }
    }
  }
  set_num_threads(saved_threads);
}

// Prompt rows: `rows` consecutive positions from t0 of one slot, all sharing the span
// `before_tail` + a tail from tail_start (each row attends its own position too).
void add_prompt(SpanBatch& span, std::vector<int32_t>& slot, int s, const std::vector<PosRange>& before_tail,
                int32_t tail_start, int32_t t0, int rows) {
  for (int i = 0; i < rows; ++i) {
    span.add_row(before_tail, tail_start, t0 + i);
    slot.push_back(s);
  }
}

// Consecutive prompt rows of a sequence are computed together (one pass over a K/V tile
// serves up to 4 of them); each row's bits are those of the row computed alone, whatever
// the chunking (rows of one unit ending in different chunks), the threads, the ISA, the
// cache type and layout, and the GQA group.
TEST(AttentionKernels, PromptRowsComputedTogetherGiveTheBitsOfEachRowAlone) {
  std::mt19937 rng(15);
  const int saved_threads = num_threads();
  for (int group : {1, 2, 4})
    for (DType dtype : {DType::F32, DType::F16})
      for (int block : {0, 16}) {
        const int kv_heads = 2, q_heads = kv_heads * group, D = 32, max_ctx = 512;
        const Cache cache = make_cache(rng, 4, kv_heads, max_ctx, D, dtype, block);
        SpanBatch span;
        span.reset(64);
        std::vector<int32_t> slot;
        add_prompt(span, slot, 0, {}, 0, 40, 11);                     // dense, counts 41..51
        add_prompt(span, slot, 1, {{3, 9}, {20, 31}}, 60, 70, 6);     // a shared sparse span
        span.add_row({{0, 5}}, 100, 140);                             // a lone decode row
        slot.push_back(2);
        add_prompt(span, slot, 3, {{1, 2}}, 200, 230, 37);            // rows over several units
        AttendedRanges ranges;
        ranges.assign(span);
        EXPECT_FALSE(ranges.extends_previous(11));  // another sequence's span
        EXPECT_TRUE(ranges.extends_previous(12));
        EXPECT_FALSE(ranges.extends_previous(17));
        const auto q = random_queries(rng, span.rows(), q_heads, D);
        const size_t per_row = size_t(q_heads) * D;
        for (Isa isa : supported_isas())
          for (int chunk : {256, 24})
            for (int threads : {1, 2}) {
              set_num_threads(threads);
              const auto together = run(q, cache.view(), slot, span, q_heads, {isa, chunk});
              for (int r = 0; r < span.rows(); ++r) {
                SpanBatch one;
                one.reset(64);
                const auto row = span.row_ranges(r);
                one.add_row(std::vector<PosRange>(row.begin(), row.end() - 1), row.back().begin, span.pos[size_t(r)]);
                const std::vector<float> qr(q.begin() + r * per_row, q.begin() + (r + 1) * per_row);
                const auto alone = run(qr, cache.view(), {slot[size_t(r)]}, one, q_heads, {isa, chunk});
                for (size_t i = 0; i < per_row; ++i)
                  ASSERT_EQ(alone[i], together[r * per_row + i])
                      << isa_name(isa) << " " << dtype_name(dtype) << " block " << block << " G " << group
                      << " chunk " << chunk << " threads " << threads << " row " << r;
              }
            }
      }
  set_num_threads(saved_threads);
}

// A step with no query rows (every unit kind) computes nothing and writes nothing.
TEST(AttentionKernels, NoRowsWriteNothing) {
  std::mt19937 rng(16);
  const Cache cache = make_cache(rng, 1, 2, 64, 16, DType::F32, 16);
  AttendedRanges ranges;
  ranges.assign_dense({});
  AttentionWorkspace ws;
  std::vector<float> q(64, 1.f), out(64, 7.f);
  const int32_t slot = 0;
  for (Isa isa : supported_isas()) {
    span_attention(q.data(), cache.view(), &slot, ranges, out.data(), 0, 4, {isa, 256}, ws);
    EXPECT_EQ(out, std::vector<float>(64, 7.f)) << isa_name(isa);
  }
}

TEST(AttentionKernels, ARowExtendsThePreviousOnlyByItsOwnNextPosition) {
  const auto extends = [](std::vector<PosRange> a, std::vector<PosRange> b) {
    AttendedRanges r;
    r.indptr = {0, int32_t(a.size()), int32_t(a.size() + b.size())};
    r.ranges = a;
    r.ranges.insert(r.ranges.end(), b.begin(), b.end());
    r.count = {0, 0};  // not read
    return r.extends_previous(1);
  };
  EXPECT_TRUE(extends({{0, 5}}, {{0, 6}}));
  EXPECT_TRUE(extends({{0, 5}, {7, 9}}, {{0, 5}, {7, 10}}));
  EXPECT_FALSE(extends({{0, 5}}, {{0, 7}}));                 // two more
  EXPECT_FALSE(extends({{0, 5}}, {{1, 6}}));                 // a different start
  EXPECT_FALSE(extends({{0, 5}, {7, 9}}, {{0, 4}, {7, 10}}));  // an earlier range differs
  EXPECT_FALSE(extends({{0, 5}}, {{0, 5}, {6, 7}}));         // a new range
  EXPECT_FALSE(extends({}, {{0, 1}}));                        // after an empty row
}

// The vector cache conversions round exactly as the scalar ones, saturate fp16, keep NaN.
TEST(AttentionKernels, KvStoreConvertsLikeTheScalarConversions) {
  std::mt19937 rng(14);
  std::vector<float> src(1000 + 13);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (auto& x : src) x = normal(rng) * std::exp2(float(std::uniform_int_distribution<int>(-30, 20)(rng)));
  const float specials[] = {0.f, -0.f, 65504.f, 65520.f, 1e6f, -1e6f, INFINITY, -INFINITY, NAN, 6e-8f, 1e-40f};
  for (size_t i = 0; i < std::size(specials); ++i) src[i * 7] = specials[i];
  for (DType dtype : {DType::F16, DType::BF16})
    for (Isa isa : supported_isas())
      for (int64_t count : {int64_t(src.size()), int64_t(5), int64_t(17)}) {
        std::vector<uint16_t> got(static_cast<size_t>(count)), want(static_cast<size_t>(count));
        store_kv(src.data(), got.data(), dtype, count, isa);
        for (int64_t i = 0; i < count; ++i) {
          const float x = src[size_t(i)];
          want[size_t(i)] = dtype == DType::BF16 ? float_to_bf16(x) : float_to_half(std::isnan(x) ? x : std::clamp(x, -65504.f, 65504.f));
        }
        for (int64_t i = 0; i < count; ++i) {
          const bool nan = std::isnan(src[size_t(i)]);
          const float back = dtype == DType::F16 ? half_to_float(got[size_t(i)]) : bf16_to_float(got[size_t(i)]);
          if (nan) {
            EXPECT_TRUE(std::isnan(back)) << isa_name(isa) << " " << dtype_name(dtype) << " element " << i;
          } else {
            ASSERT_EQ(got[size_t(i)], want[size_t(i)]) << isa_name(isa) << " " << dtype_name(dtype) << " value " << src[size_t(i)];
            if (dtype == DType::F16) {
              EXPECT_TRUE(std::isfinite(back)) << src[size_t(i)];
            }
          }
        }
      }
}

}  // namespace
}  // namespace sspan::cpu
