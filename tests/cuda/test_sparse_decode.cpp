// The block-sparse decode attention kernel against the CPU block-sparse attention and a
// dense masked softmax over the decoded ranges, every element within the dtype's
// tolerance: random spans, block sizes, cluster sizes, GQA groups, lengths, batch sizes,
// every head dim, both dtypes, and every launch configuration (2 or 4 warps, scalar or
// tensor-core math, forced split counts, a row subset).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cuda/device_buffer.h"
#include "cuda_test_util.h"
#include "sparse_decode_attention.h"
#include "span_fixture.h"
#include "sspan/error.h"

namespace sspan::test {
namespace {

using cuda::DeviceBuffer;
using kernels::DecodeMath;

struct DecodeCase {
  DType dtype = DType::F16;
  AttnShape shape;
  int block_size = 64;
  int cluster = 32;
  double keep = 0.5;
  bool dense = false;     // every row dense (no blocks, tail from 0)
  int forced_splits = 0;  // 0: chosen as the backend does
  int warps = 4;
  DecodeMath math = DecodeMath::Scalar;
  bool subset = false;    // serve every other row only (row_ids); the rest must stay untouched
  unsigned seed = 1;
};

std::string describe(const DecodeCase& c) {
  return std::string(dtype_name(c.dtype)) + " rows=" + std::to_string(c.shape.rows) + " Hq=" +
         std::to_string(c.shape.q_heads) + " Hkv=" + std::to_string(c.shape.kv_heads) + " D=" +
         std::to_string(c.shape.head_dim) + " C=" + std::to_string(c.shape.max_ctx) + " B=" +
         std::to_string(c.block_size) + " cluster=" + std::to_string(c.cluster) + (c.dense ? " dense" : "") +
         " splits=" + std::to_string(c.forced_splits) + " warps=" + std::to_string(c.warps) + " math=" +
         cuda::decode_math_name(c.math) + (c.subset ? " subset" : "");
}

void run_case(const DecodeCase& c) {
  SCOPED_TRACE(describe(c));
  const AttnShape& s = c.shape;
  std::mt19937 rng(c.seed);
  const size_t cache_elems = size_t(s.rows) * s.kv_heads * s.max_ctx * s.head_dim;
  const std::vector<float> k_host = random_values(rng, cache_elems, c.dtype);
  const std::vector<float> v_host = random_values(rng, cache_elems, c.dtype);
  const std::vector<float> q_host = random_values(rng, size_t(s.rows) * s.q_heads * s.head_dim, c.dtype, 2.f);

  // Rows: the first at t = 0 (length 1), the second at the end of the context, the rest random.
  SpanBatch span;
  span.reset(c.block_size);
  std::vector<int32_t> slot(size_t(s.rows));
  std::uniform_int_distribution<int> any_pos(0, s.max_ctx - 1);
  for (int r = 0; r < s.rows; ++r) {
    slot[size_t(r)] = s.rows - 1 - r;  // rows and slots in different orders
    const int t = r == 0 ? 0 : r == 1 ? s.max_ctx - 1 : any_pos(rng);
    if (c.dense) {
      span.add_dense_row(t);
      continue;
    }
    const int tail_len = std::uniform_int_distribution<int>(1, std::min(t + 1, 80))(rng);
    const int tail_start = t + 1 - tail_len;
    span.add_row(random_clusters(rng, tail_start, c.cluster, c.keep), tail_start, t);
  }
  ASSERT_NO_THROW(span.validate());
  std::vector<int32_t> served;
  for (int r = 0; r < s.rows; ++r)
    if (!c.subset || r % 2 == 1) served.push_back(r);

  DeviceBuffer k_dev(cache_elems * dtype_size(c.dtype), "keys"), v_dev(cache_elems * dtype_size(c.dtype), "values");
  DeviceBuffer q_dev(q_host.size() * dtype_size(c.dtype), "queries"), o_dev(q_host.size() * dtype_size(c.dtype), "out");
  upload_as(c.dtype, k_host, k_dev.get());
  upload_as(c.dtype, v_host, v_dev.get());
  upload_as(c.dtype, q_host, q_dev.get());
  DeviceBuffer slot_d = device_copy(slot, "slot"), indptr_d = device_copy(span.indptr, "indptr"),
               ids_d = device_copy(span.block_ids, "block ids"), masks_d = device_copy(span.masks, "masks"),
               tail_d = device_copy(span.tail_start, "tail"), pos_d = device_copy(span.pos, "pos"),
               rows_d = device_copy(served, "row ids");

  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  kernels::SparseDecodeParams p;
  p.q = q_dev.get();
  p.k_cache = k_dev.get();
  p.v_cache = v_dev.get();
  p.q_row_stride = p.out_row_stride = int64_t(s.q_heads) * s.head_dim;
  p.cache_head_stride = int64_t(s.max_ctx) * s.head_dim;
  p.cache_slot_stride = p.cache_head_stride * s.kv_heads;
  p.max_ctx = s.max_ctx;
  p.row_ids = c.subset ? rows_d.as<int32_t>() : nullptr;
  p.slot = slot_d.as<int32_t>();
  p.indptr = indptr_d.as<int32_t>();
  p.block_ids = ids_d.as<int32_t>();
  p.masks = masks_d.as<uint32_t>();
  p.block_id_stride = 1;
  p.mask_stride = span.words_per_block();
  p.tail_start = tail_d.as<int32_t>();
  p.pos = pos_d.as<int32_t>();
  p.out = o_dev.get();
  p.rows = int(served.size());
  p.q_heads = s.q_heads;
  p.kv_heads = s.kv_heads;
  p.head_dim = s.head_dim;
  p.block_size = c.block_size;
  p.scale = 1.f / std::sqrt(float(s.head_dim));
  p.warps = c.warps;
  p.math = c.math;
  int max_items = 0;
  for (int r : served) max_items = std::max<int>(max_items, int((span.row_count(r) + 31) / 32) + 8);
  const int per_sm = kernels::sparse_decode_ctas_per_sm(c.dtype, s.head_dim, c.warps);
  ASSERT_GE(per_sm, 1);
  p.splits = c.forced_splits ? c.forced_splits
                             : cuda::choose_decode_splits({p.rows * s.kv_heads, sms * per_sm, max_items, 64});
  const int64_t states = int64_t(p.rows) * s.q_heads * p.splits;
  DeviceBuffer part_o(size_t(states) * s.head_dim * 4, "part o"), part_m(size_t(states) * 4, "part m"),
      part_d(size_t(states) * 4, "part d");
  p.part_o = part_o.as<float>();
  p.part_m = part_m.as<float>();
  p.part_d = part_d.as<float>();

  poison(c.dtype, o_dev.get(), q_host.size());
  kernels::launch_sparse_decode_attention(p, c.dtype, test_stream());
  ASSERT_EQ(cudaStreamSynchronize(test_stream()), cudaSuccess);
  const std::vector<float> out = download_as(c.dtype, o_dev.get(), q_host.size());

  cpu::KvLayerView kv{k_host.data(), v_host.data(), s.rows, s.kv_heads, s.max_ctx, s.head_dim};
  std::vector<float> cpu_ref(q_host.size());
  cpu::span_attention(q_host.data(), kv, slot.data(), span, cpu_ref.data(), s.rows, s.q_heads);
  const std::vector<float> by_ranges = reference_by_ranges(q_host, kv, slot, span, s.q_heads);
  // Compare the served rows; the others must still hold the poison.
  const size_t row_elems = size_t(s.q_heads) * s.head_dim;
  std::vector<float> got, want_cpu, want_ranges;
  for (int r = 0; r < s.rows; ++r) {
    const bool is_served = std::find(served.begin(), served.end(), r) != served.end();
    for (size_t e = 0; e < row_elems; ++e) {
      const size_t i = size_t(r) * row_elems + e;
      if (!is_served) {
        ASSERT_TRUE(std::isnan(out[i])) << "row " << r << " is not served but element " << e << " was written";
        continue;
      }
      got.push_back(out[i]);
      want_cpu.push_back(cpu_ref[i]);
      want_ranges.push_back(by_ranges[i]);
    }
  }
  expect_close(got, want_cpu, c.dtype, "vs CPU span attention");
  expect_close(got, want_ranges, c.dtype, "vs dense masked softmax");
}

class SparseDecodeTest : public ::testing::Test {
 protected:
  void SetUp() override { SSPAN_REQUIRE_CUDA(); }
};

TEST_F(SparseDecodeTest, BlockSizesAndClustersFp16) {
  unsigned seed = 10;
  for (int b : {16, 32, 64, 128, 256})
    for (int cluster : {16, 64, 256}) {
      DecodeCase c;
      c.shape = {8, 8, 8, 128, 2048};
      c.block_size = b;
      c.cluster = cluster;
      c.seed = seed++;
      run_case(c);
    }
}

TEST_F(SparseDecodeTest, EveryLaunchConfigurationOnEveryHeadDim) {
  unsigned seed = 300;
  for (DType dt : {DType::F16, DType::BF16})
    for (int d : {32, 48, 64, 80, 96, 128})
      for (int warps : {2, 4})
        for (DecodeMath math : {DecodeMath::Scalar, DecodeMath::TensorCore}) {
          DecodeCase c;
          c.dtype = dt;
          c.shape = {5, 16, 4, d, 700};  // group 4
          c.block_size = d == 48 ? 16 : 64;
          c.cluster = 16;
          c.warps = warps;
          c.math = math;
          c.seed = seed++;
          run_case(c);
        }
}

TEST_F(SparseDecodeTest, GqaGroupsOfEverySizeBothMaths) {
  unsigned seed = 40;
  for (int group : {1, 2, 3, 4, 5, 6, 7, 8})
    for (DecodeMath math : {DecodeMath::Scalar, DecodeMath::TensorCore}) {
      DecodeCase c;
      c.dtype = DType::BF16;
      c.shape = {6, 2 * group, 2, 128, 3000};
      c.block_size = 64;
      c.cluster = 32;
      c.math = math;
      c.seed = seed++;
      run_case(c);
    }
}

TEST_F(SparseDecodeTest, LongContext16k) {
  for (DecodeMath math : {DecodeMath::Scalar, DecodeMath::TensorCore}) {
    DecodeCase c;
    c.shape = {3, 8, 1, 128, 16384};
    c.block_size = 256;
    c.cluster = 128;
    c.keep = 0.3;
    c.math = math;
    c.seed = 91;
    run_case(c);
  }
}

TEST_F(SparseDecodeTest, Batch64ShortContexts) {
  DecodeCase c;
  c.dtype = DType::BF16;
  c.shape = {64, 8, 8, 64, 600};
  c.block_size = 16;
  c.cluster = 32;
  c.warps = 2;
  c.seed = 5;
  run_case(c);
}

TEST_F(SparseDecodeTest, DenseRowsAreTheFullSpan) {
  for (DType dt : {DType::F16, DType::BF16})
    for (DecodeMath math : {DecodeMath::Scalar, DecodeMath::TensorCore}) {
      DecodeCase c;
      c.dtype = dt;
      c.dense = true;
      c.shape = {4, 32, 8, 128, 4100};
      c.math = math;
      c.seed = 12;
      run_case(c);
    }
}

TEST_F(SparseDecodeTest, ManySplitsLeaveEmptySplitsHarmless) {
  // 64 splits over rows as short as one token: most splits are empty (m = -inf, d = 0).
  for (int splits : {3, 64}) {
    DecodeCase c;
    c.shape = {4, 8, 2, 128, 300};
    c.block_size = 64;
    c.cluster = 16;
    c.forced_splits = splits;
    c.seed = 200 + unsigned(splits);
    run_case(c);
  }
}

TEST_F(SparseDecodeTest, ARowSubsetWritesOnlyItsRows) {
  for (int splits : {1, 4}) {
    DecodeCase c;
    c.shape = {7, 8, 2, 64, 900};
    c.subset = true;
    c.forced_splits = splits;
    c.math = splits == 1 ? DecodeMath::Scalar : DecodeMath::TensorCore;
    c.seed = 400 + unsigned(splits);
    run_case(c);
  }
}

TEST_F(SparseDecodeTest, RejectsUnsupportedShapes) {
  kernels::SparseDecodeParams p;
  p.q_heads = p.kv_heads = 1;
  p.max_ctx = 16;
  p.rows = 1;
  p.head_dim = 112;
  EXPECT_THROW(kernels::launch_sparse_decode_attention(p, DType::F16, test_stream()), Error);
  p.head_dim = 64;
  p.warps = 3;
  EXPECT_THROW(kernels::launch_sparse_decode_attention(p, DType::F16, test_stream()), Error);
  p.warps = 2;
  p.q_heads = 16;  // group 16
  EXPECT_THROW(kernels::launch_sparse_decode_attention(p, DType::F16, test_stream()), Error);
}

}  // namespace
}  // namespace sspan::test
