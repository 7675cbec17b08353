// The attention record on the GPU: the decode kernel's kept scores finished into the
// attention mass (kernels/attention_record.h) against a float64 softmax from the same q
// and K, per (layer, KV head) spans of PerHead rows against the CPU op, and the mean
// query against the CPU backend's definition, and the device top-k selection against
// the host's. Every context length from one key to the
// whole cache, GQA groups 1 to 8, both dtypes, both maths, one split and many.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attention_record.h"
#include "cpu/ops.h"
#include "cuda/device_buffer.h"
#include "cuda_test_util.h"
#include "sparse_decode_attention.h"
#include "span/top_keys.h"
#include "span_fixture.h"
#include "sspan/error.h"

namespace sspan::test {
namespace {

using cuda::DeviceBuffer;
using kernels::DecodeMath;

// mass[j], j in [0, t]: softmax over [0, t] of q_g . k_j / sqrt(D) summed over the G query
// heads g of KV head hk, in float64.
std::vector<double> reference_mass(const std::vector<float>& q_row, const cpu::KvLayerView& kv, int group, int slot,
                                   int hk, int t) {
  const int D = kv.head_dim;
  std::vector<double> mass(size_t(t) + 1, 0.0), s(size_t(t) + 1);
  for (int g = 0; g < group; ++g) {
    const float* q = q_row.data() + size_t(hk * group + g) * D;
    double mx = -INFINITY;
    for (int j = 0; j <= t; ++j) {
      const float* k = kv.k_row(slot, hk, j);
      double acc = 0;
      for (int i = 0; i < D; ++i) acc += double(q[i]) * k[i];
      s[size_t(j)] = acc / std::sqrt(double(D));
      mx = std::max(mx, s[size_t(j)]);
    }
    double den = 0;
    for (const double x : s) den += std::exp(x - mx);
    for (int j = 0; j <= t; ++j) mass[size_t(j)] += std::exp(s[size_t(j)] - mx) / den;
  }
  return mass;
}

struct RecordCase {
  DType dtype = DType::F16;
  int q_heads = 8, kv_heads = 2, head_dim = 64, max_ctx = 1500;
  DecodeMath math = DecodeMath::Scalar;
  int splits = 1;
  int warps = 4;
  unsigned seed = 1;
};

std::string describe(const RecordCase& c) {
  return std::string(dtype_name(c.dtype)) + " Hq=" + std::to_string(c.q_heads) + " Hkv=" + std::to_string(c.kv_heads) +
         " D=" + std::to_string(c.head_dim) + " C=" + std::to_string(c.max_ctx) + " math=" +
         cuda::decode_math_name(c.math) + " splits=" + std::to_string(c.splits) + " warps=" + std::to_string(c.warps);
}

// One decode launch on the device: the cache and queries of `rows` rows (one slot each),
// the output, the span rows and the split states, and the parameters pointing at them
// (no record, no per-head rows: the tests add those).
struct DecodeLaunch {
  DType dtype;
  size_t q_elems;
  DeviceBuffer k, v, q, out, slot, indptr, ids, masks, tail, pos, part_o, part_m, part_d;
  kernels::SparseDecodeParams p;

  DecodeLaunch(DType dtype, const std::vector<float>& k_host, const std::vector<float>& v_host,
               const std::vector<float>& q_host, const std::vector<int32_t>& slot_host,
               const std::vector<int32_t>& pos_host, const SpanBatch& span_rows, int q_heads, int kv_heads,
               int head_dim, int max_ctx, DecodeMath math, int splits, int warps)
      : dtype(dtype),
        q_elems(q_host.size()),
        k(k_host.size() * dtype_size(dtype), "keys"),
        v(v_host.size() * dtype_size(dtype), "values"),
        q(q_host.size() * dtype_size(dtype), "queries"),
        out(q_host.size() * dtype_size(dtype), "out"),
        slot(device_copy(slot_host, "slot")),
        indptr(device_copy(span_rows.indptr, "indptr")),
        ids(device_copy(span_rows.block_ids, "block ids")),
        masks(device_copy(span_rows.masks, "masks")),
        tail(device_copy(span_rows.tail_start, "tail")),
        pos(device_copy(pos_host, "pos")) {
    upload_as(dtype, k_host, k.get());
    upload_as(dtype, v_host, v.get());
    upload_as(dtype, q_host, q.get());
    const int rows = int(pos_host.size());
    const size_t states = size_t(rows) * size_t(q_heads) * size_t(splits);
    part_o = DeviceBuffer(states * size_t(head_dim) * 4, "part o");
    part_m = DeviceBuffer(states * 4, "part m");
    part_d = DeviceBuffer(states * 4, "part d");
    p.q = q.get();
    p.k_cache = k.get();
    p.v_cache = v.get();
    p.q_row_stride = p.out_row_stride = int64_t(q_heads) * head_dim;
    p.cache_head_stride = int64_t(max_ctx) * head_dim;
    p.cache_slot_stride = p.cache_head_stride * kv_heads;
    p.max_ctx = max_ctx;
    p.slot = slot.as<int32_t>();
    p.indptr = indptr.as<int32_t>();
    p.block_ids = ids.as<int32_t>();
    p.masks = masks.as<uint32_t>();
    p.mask_stride = span_rows.words_per_block();
    p.tail_start = tail.as<int32_t>();
    p.pos = pos.as<int32_t>();
    p.out = out.get();
    p.part_o = part_o.as<float>();
    p.part_m = part_m.as<float>();
    p.part_d = part_d.as<float>();
    p.rows = rows;
    p.q_heads = q_heads;
    p.kv_heads = kv_heads;
    p.head_dim = head_dim;
    p.block_size = span_rows.block_size;
    p.splits = splits;
    p.scale = 1.f / std::sqrt(float(head_dim));
    p.warps = warps;
    p.math = math;
  }

  // The attention output of a launch with the current parameters (poisoned first).
  std::vector<float> run() {
    poison(dtype, out.get(), q_elems);
    kernels::launch_sparse_decode_attention(p, dtype, test_stream());
    EXPECT_EQ(cudaStreamSynchronize(test_stream()), cudaSuccess);
    return download_as(dtype, out.get(), q_elems);
  }
};

// The kernel's per-element tolerance on the mass: the scores are fp32 dot products of the
// (rounded) inputs, but the tensor-core math sums probabilities rounded to the dtype into
// its normaliser (fp16 2^-11, bf16 2^-8 relative each).
double mass_tolerance(DType dtype) { return dtype == DType::BF16 ? 1e-2 : 2e-3; }

// Five rows: four dense rows recorded (t = 0, 37, C - 1 and a random t) and one sparse row
// that is not. The kernel runs layer 1 of 2, so layer 0 of the mass must stay untouched.
void run_record_case(const RecordCase& c) {
  SCOPED_TRACE(describe(c));
  std::mt19937 rng(c.seed);
  const int rows = 5, Hq = c.q_heads, Hkv = c.kv_heads, G = Hq / Hkv, D = c.head_dim, C = c.max_ctx, L = 2;
  const size_t cache_elems = size_t(rows) * Hkv * C * D;
  std::vector<float> k_host = random_values(rng, cache_elems, c.dtype, 2.f);  // spread scores
  const std::vector<float> v_host = random_values(rng, cache_elems, c.dtype);
  const std::vector<float> q_host = random_values(rng, size_t(rows) * Hq * D, c.dtype, 2.f);

  const std::vector<int32_t> pos = {0, 37, std::uniform_int_distribution<int>(40, C - 2)(rng), C - 1, C / 2};
  const std::vector<int32_t> record = {0, 1, 2, 3, -1};
  const std::vector<int32_t> mass_rows = {0, 1, 2, 3};
  const std::vector<int32_t> slot = {4, 2, 0, 1, 3};
  SpanBatch span;
  span.reset(64);
  for (int r = 0; r < 4; ++r) span.add_dense_row(pos[size_t(r)]);
  span.add_row(random_clusters(rng, pos[4] - 10, 16, 0.4), pos[4] - 10, pos[4]);

  DecodeLaunch launch(c.dtype, k_host, v_host, q_host, slot, pos, span, Hq, Hkv, D, C, c.math, c.splits, c.warps);
  DeviceBuffer record_d = device_copy(record, "mass record"), mass_rows_d = device_copy(mass_rows, "mass rows");
  const int records = int(mass_rows.size());
  DeviceBuffer raw(size_t(records) * Hq * C * 4, "raw scores"), lse(size_t(records) * Hq * 4, "lse"),
      mass(size_t(records) * L * Hkv * C * 4, "mass");
  poison(DType::F32, raw.get(), size_t(records) * Hq * C);
  poison(DType::F32, mass.get(), size_t(records) * L * Hkv * C);
  kernels::SparseDecodeParams& p = launch.p;
  p.layer = 1;

  // Without the record, then with it: the attention output must not change at all.
  const std::vector<float> plain = launch.run();
  p.mass_record = record_d.as<int32_t>();
  p.raw_scores = raw.as<float>();
  p.raw_stride = C;
  p.score_lse = lse.as<float>();
  const std::vector<float> with = launch.run();
  kernels::AttentionMassParams m;
  m.mass_rows = mass_rows_d.as<int32_t>();
  m.pos = p.pos;
  m.raw_scores = p.raw_scores;
  m.raw_stride = C;
  m.score_lse = p.score_lse;
  m.mass = mass.as<float>();
  m.mass_stride = C;
  m.records = records;
  m.layers = L;
  m.layer = 1;
  m.q_heads = Hq;
  m.kv_heads = Hkv;
  m.max_keys = C;
  kernels::launch_attention_mass(m, test_stream());
  ASSERT_EQ(cudaStreamSynchronize(test_stream()), cudaSuccess);
  for (size_t i = 0; i < plain.size(); ++i)
    ASSERT_EQ(std::memcmp(&plain[i], &with[i], sizeof(float)), 0) << "recording changed output element " << i;

  const std::vector<float> got = download_as(DType::F32, mass.get(), size_t(records) * L * Hkv * C);
  const cpu::KvLayerView kv{k_host.data(), v_host.data(), rows, Hkv, C, D};
  const double tol = mass_tolerance(c.dtype);
  for (int i = 0; i < records; ++i) {
    const int r = mass_rows[size_t(i)], t = pos[size_t(r)];
    const std::vector<float> q_row(q_host.begin() + std::ptrdiff_t(r) * Hq * D,
                                   q_host.begin() + std::ptrdiff_t(r + 1) * Hq * D);
    for (int h = 0; h < Hkv; ++h) {
      const std::vector<double> want = reference_mass(q_row, kv, G, slot[size_t(r)], h, t);
      const float* layer0 = got.data() + ((size_t(i) * L + 0) * Hkv + size_t(h)) * C;
      const float* layer1 = got.data() + ((size_t(i) * L + 1) * Hkv + size_t(h)) * C;
      double sum = 0;
      for (int j = 0; j < C; ++j) {
        ASSERT_TRUE(std::isnan(layer0[j])) << "layer 0 written: record " << i << " head " << h << " key " << j;
        if (j > t) {
          ASSERT_TRUE(std::isnan(layer1[j])) << "key past t written: record " << i << " head " << h << " key " << j;
          continue;
        }
        ASSERT_TRUE(std::isfinite(layer1[j])) << "record " << i << " head " << h << " key " << j;
        ASSERT_NEAR(layer1[j], want[size_t(j)], tol * want[size_t(j)] + 1e-6 * G)
            << "record " << i << " (t = " << t << ") head " << h << " key " << j;
        sum += layer1[j];
      }
      EXPECT_NEAR(sum, G, tol * G) << "record " << i << " head " << h << ": each query head's mass sums to 1";
    }
  }
}

class AttentionRecordTest : public ::testing::Test {
 protected:
  void SetUp() override { SSPAN_REQUIRE_CUDA(); }
};

TEST_F(AttentionRecordTest, MassEqualsFloat64ForEveryGroupMathAndSplit) {
  unsigned seed = 1;
  for (DType dt : {DType::F16, DType::BF16})
    for (const int group : {1, 3, 4, 8})
      for (DecodeMath math : {DecodeMath::Scalar, DecodeMath::TensorCore})
        for (const int splits : {1, 5}) {
          RecordCase c;
          c.dtype = dt;
          c.kv_heads = 2;
          c.q_heads = 2 * group;
          c.math = math;
          c.splits = splits;
          c.seed = seed++;
          run_record_case(c);
        }
}

TEST_F(AttentionRecordTest, MassOnEveryHeadDimAndALongContext) {
  unsigned seed = 100;
  for (const int d : {32, 48, 80, 128}) {
    RecordCase c;
    c.head_dim = d;
    c.q_heads = 4;
    c.kv_heads = 4;
    c.warps = 2;
    c.math = d == 48 ? DecodeMath::Scalar : DecodeMath::TensorCore;
    c.splits = 3;
    c.seed = seed++;
    run_record_case(c);
  }
  RecordCase c;  // 16k keys over 16 splits
  c.max_ctx = 16384;
  c.q_heads = 8;
  c.kv_heads = 1;
  c.splits = 16;
  c.seed = 7;
  run_record_case(c);
}

// Row 0 is PerHead: at layer 1 its KV head h reads span row 2 + 1 * Hkv + h of the step's
// span rows (the span, then the head span [layer][kv head]); row 1 reads its own row.
TEST_F(AttentionRecordTest, PerHeadRowsReadTheirLayersSpans) {
  for (DType dt : {DType::F16, DType::BF16})
    for (DecodeMath math : {DecodeMath::Scalar, DecodeMath::TensorCore})
      for (const int splits : {1, 4}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " " + cuda::decode_math_name(math) + " splits " +
                     std::to_string(splits));
        std::mt19937 rng(20 + unsigned(splits));
        const int rows = 2, L = 2, Hkv = 2, G = 4, Hq = Hkv * G, D = 64, C = 900, B = 32;
        const size_t cache_elems = size_t(rows) * Hkv * C * D;
        const std::vector<float> k_host = random_values(rng, cache_elems, dt);
        const std::vector<float> v_host = random_values(rng, cache_elems, dt);
        const std::vector<float> q_host = random_values(rng, size_t(rows) * Hq * D, dt, 2.f);
        const std::vector<int32_t> pos = {850, 600}, slot = {1, 0};
        SpanBatch span, heads, all;  // all: the span rows as the kernel reads them
        for (SpanBatch* sb : {&span, &heads, &all}) sb->reset(B);
        span.add_dense_row(pos[0]);
        const int tail1 = pos[1] - 40;
        const auto row1 = random_clusters(rng, tail1, 16, 0.3);
        span.add_row(row1, tail1, pos[1]);
        for (int i = 0; i < L * Hkv; ++i) {
          const int tail = pos[0] - 5 - 7 * i;
          heads.add_row(random_clusters(rng, tail, 8, 0.2), tail, pos[0]);
        }
        for (const SpanBatch* sb : {&span, &heads})
          for (int r = 0; r < sb->rows(); ++r) all.add_attended_row(sb->row_ranges(r), sb->pos[size_t(r)]);
        ASSERT_NO_THROW(all.validate());
        const std::vector<int32_t> head_first = {2, -1};

        DecodeLaunch launch(dt, k_host, v_host, q_host, slot, pos, all, Hq, Hkv, D, C, math, splits, 4);
        const DeviceBuffer first_d = device_copy(head_first, "head first");
        launch.p.head_first = first_d.as<int32_t>();
        launch.p.layer = 1;
        const std::vector<float> got = launch.run();

        // The CPU op on the same rows: layer 1's head rows of row 0, row 1's own span row.
        cpu::AttendedRanges ranges;
        const std::vector<int32_t> head_row = {(0 * L + 1) * Hkv + 0, (0 * L + 1) * Hkv + 1, -1, -1};
        ranges.assign_per_head(span, &heads, head_row, Hkv);
        const cpu::KvLayerView kv{k_host.data(), v_host.data(), rows, Hkv, C, D};
        std::vector<float> want(q_host.size());
        cpu::AttentionWorkspace ws;
        cpu::span_attention(q_host.data(), kv, slot.data(), ranges, want.data(), rows, Hq,
                            cpu::AttentionConfig{cpu::best_isa()}, ws);
        expect_close(got, want, dt, "per-head rows vs the CPU op");
      }
}

// The mean last-layer query of some rows: heads summed in order in fp32, as the CPU
// backend's keep_queries.
TEST_F(AttentionRecordTest, QueryMeanIsTheMeanOverHeads) {
  for (DType dt : {DType::F16, DType::BF16}) {
    std::mt19937 rng(4);
    const int rows = 6, Hq = 12, D = 96;
    const std::vector<float> q_host = random_values(rng, size_t(rows) * Hq * D, dt, 3.f);
    const std::vector<int32_t> query_rows = {1, 4, 5};
    DeviceBuffer q_dev(q_host.size() * dtype_size(dt), "queries"), out(query_rows.size() * D * 4, "mean queries");
    upload_as(dt, q_host, q_dev.get());
    DeviceBuffer rows_d = device_copy(query_rows, "query rows");
    poison(DType::F32, out.get(), query_rows.size() * D);
    kernels::launch_query_mean(dt, q_dev.get(), int64_t(Hq) * D, rows_d.as<int32_t>(), int(query_rows.size()), Hq, D,
                               out.as<float>(), test_stream());
    const std::vector<float> got = download_as(DType::F32, out.get(), query_rows.size() * D);
    std::vector<float> want(got.size(), 0.f);
    for (size_t i = 0; i < query_rows.size(); ++i)
      for (int h = 0; h < Hq; ++h)
        for (int d = 0; d < D; ++d)
          want[i * D + size_t(d)] += q_host[(size_t(query_rows[i]) * Hq + size_t(h)) * D + size_t(d)] / float(Hq);
    expect_close(got, want, 1e-6, "mean query " + std::string(dtype_name(dt)));
  }
}

// The device selection against span_detail::top_k_keys on the same masses: spread masses,
// masses of four levels (exact ties everywhere, zeros among them), k of 1, of every key
// and past it, one key and several CTA widths of keys; the other records hold other
// masses, so reading the wrong record shows.
TEST_F(AttentionRecordTest, TopKeysAreTheHostTopK) {
  std::mt19937 rng(9);
  const int records = 3, L = 2, Hkv = 3, C = 3000, record = 1;
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  for (const int keys : {1, 7, 256, 257, 2999, 3000})
    for (const bool ties : {false, true})
      for (const int k : {1, 5, 64, 256, 5000}) {
        SCOPED_TRACE(std::to_string(keys) + " keys, k " + std::to_string(k) + (ties ? ", ties" : ""));
        const int kept = std::min(k, keys);
        std::vector<float> mass(size_t(records) * L * Hkv * C, NAN);  // keys past t are never read
        for (int r = 0; r < records; ++r)
          for (int h = 0; h < L * Hkv; ++h)
            for (int j = 0; j < keys; ++j) {
              const float u = unit(rng);
              mass[(size_t(r) * L * Hkv + size_t(h)) * C + size_t(j)] =
                  ties ? float(rng() % 4) * 0.25f : u * u * u;
            }
        DeviceBuffer mass_d = device_copy(mass, "mass"), out(size_t(L) * Hkv * kept * 4, "top keys");
        kernels::AttentionTopKParams p;
        p.mass = mass_d.as<float>();
        p.mass_stride = C;
        p.record = record;
        p.layers = L;
        p.kv_heads = Hkv;
        p.keys = keys;
        p.k = kept;
        p.out = out.as<int32_t>();
        kernels::launch_attention_top_k(p, test_stream());
        ASSERT_EQ(cudaStreamSynchronize(test_stream()), cudaSuccess);
        std::vector<int32_t> got(size_t(L) * Hkv * kept);
        download_bytes(got.data(), out.get(), got.size() * 4);
        std::vector<int32_t> order, want;
        for (int h = 0; h < L * Hkv; ++h) {
          const std::span<const float> head(mass.data() + (size_t(record) * L * Hkv + size_t(h)) * C, size_t(keys));
          span_detail::top_k_keys(head, k, order, want);
          ASSERT_EQ(std::vector<int32_t>(got.begin() + std::ptrdiff_t(h) * kept, got.begin() + std::ptrdiff_t(h + 1) * kept),
                    want)
              << "(layer, KV head) " << h;
        }
      }
}

TEST_F(AttentionRecordTest, RejectsBadParameters) {
  kernels::AttentionMassParams m;
  m.records = 1;
  m.layers = 2;
  m.layer = 2;  // outside the layers
  m.q_heads = m.kv_heads = 1;
  m.max_keys = 16;
  EXPECT_THROW(kernels::launch_attention_mass(m, test_stream()), Error);
  kernels::SparseDecodeParams p;
  p.q_heads = p.kv_heads = 1;
  p.max_ctx = 16;
  p.rows = 1;
  p.head_dim = 64;
  p.warps = 4;
  int32_t record = 0;
  p.mass_record = &record;  // recorded rows without score buffers
  EXPECT_THROW(kernels::launch_sparse_decode_attention(p, DType::F16, test_stream()), Error);
  kernels::AttentionTopKParams t;
  int32_t out = 0;
  float mass = 1.f;
  t.mass = &mass;
  t.out = &out;
  t.mass_stride = t.layers = t.kv_heads = t.keys = 1;
  t.k = 2;  // more than the keys
  EXPECT_THROW(kernels::launch_attention_top_k(t, test_stream()), Error);
}

}  // namespace
}  // namespace sspan::test
