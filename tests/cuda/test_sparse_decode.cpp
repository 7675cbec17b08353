// The block-sparse decode attention kernel against the CPU block-sparse attention and a
// dense masked softmax over the decoded ranges, over random spans, block sizes, cluster
// sizes, GQA ratios, lengths, batch sizes, head dims and dtypes.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cuda/device_buffer.h"
#include "cuda_test_util.h"
#include "sspan/error.h"
#include "sparse_decode_attention.h"
#include "span_fixture.h"

namespace sspan::test {
namespace {

using cuda::DeviceBuffer;

struct DecodeCase {
  DType dtype = DType::F16;
  AttnShape shape;
  int block_size = 64;
  int cluster = 32;
  double keep = 0.5;
  bool dense = false;     // every row dense (no blocks, tail from 0)
  int forced_splits = 0;  // 0: chosen for the device
  unsigned seed = 1;
};

std::string describe(const DecodeCase& c) {
  return std::string(dtype_name(c.dtype)) + " rows=" + std::to_string(c.shape.rows) + " Hq=" +
         std::to_string(c.shape.q_heads) + " Hkv=" + std::to_string(c.shape.kv_heads) + " D=" +
         std::to_string(c.shape.head_dim) + " C=" + std::to_string(c.shape.max_ctx) + " B=" +
         std::to_string(c.block_size) + " cluster=" + std::to_string(c.cluster) + (c.dense ? " dense" : "") +
         " splits=" + std::to_string(c.forced_splits);
}

template <class T>
DeviceBuffer device_copy(const std::vector<T>& host, const char* what) {
  DeviceBuffer buf(std::max<size_t>(1, host.size()) * sizeof(T), what);
  if (!host.empty()) cudaMemcpy(buf.get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  return buf;
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

  DeviceBuffer k_dev(cache_elems * dtype_size(c.dtype), "keys"), v_dev(cache_elems * dtype_size(c.dtype), "values");
  DeviceBuffer q_dev(q_host.size() * dtype_size(c.dtype), "queries"), o_dev(q_host.size() * dtype_size(c.dtype), "out");
  upload_as(c.dtype, k_host, k_dev.get());
  upload_as(c.dtype, v_host, v_dev.get());
  upload_as(c.dtype, q_host, q_dev.get());
  DeviceBuffer slot_d = device_copy(slot, "slot"), indptr_d = device_copy(span.indptr, "indptr"),
               ids_d = device_copy(span.block_ids, "block ids"), masks_d = device_copy(span.masks, "masks"),
               tail_d = device_copy(span.tail_start, "tail"), pos_d = device_copy(span.pos, "pos");

  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  kernels::SparseDecodeParams p;
  p.q = q_dev.get();
  p.k_cache = k_dev.get();
  p.v_cache = v_dev.get();
  p.q_row_stride = p.out_row_stride = int64_t(s.q_heads) * s.head_dim;
  p.cache_head_stride = int64_t(s.max_ctx) * s.head_dim;
  p.cache_slot_stride = p.cache_head_stride * s.kv_heads;
  p.max_ctx = s.max_ctx;
  p.slot = slot_d.as<int32_t>();
  p.indptr = indptr_d.as<int32_t>();
  p.block_ids = ids_d.as<int32_t>();
  p.masks = masks_d.as<uint32_t>();
  p.block_id_stride = 1;
  p.mask_stride = span.words_per_block();
  p.tail_start = tail_d.as<int32_t>();
  p.pos = pos_d.as<int32_t>();
  p.out = o_dev.get();
  p.rows = s.rows;
  p.q_heads = s.q_heads;
  p.kv_heads = s.kv_heads;
  p.head_dim = s.head_dim;
  p.block_size = c.block_size;
  p.scale = 1.f / std::sqrt(float(s.head_dim));
  p.splits = c.forced_splits ? c.forced_splits : kernels::choose_decode_splits(s.rows, s.kv_heads, sms, 64);
  const int64_t states = int64_t(s.rows) * s.q_heads * p.splits;
  DeviceBuffer part_o(size_t(states) * s.head_dim * 4, "part o"), part_m(size_t(states) * 4, "part m"),
      part_d(size_t(states) * 4, "part d");
  p.part_o = part_o.as<float>();
  p.part_m = part_m.as<float>();
  p.part_d = part_d.as<float>();

  poison(c.dtype, o_dev.get(), q_host.size());
  kernels::launch_sparse_decode_attention(p, c.dtype, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> out = download_as(c.dtype, o_dev.get(), q_host.size());

  cpu::KvLayerView kv{k_host.data(), v_host.data(), s.rows, s.kv_heads, s.max_ctx, s.head_dim};
  std::vector<float> cpu_ref(q_host.size());
  cpu::span_attention(q_host.data(), kv, slot.data(), span, cpu_ref.data(), s.rows, s.q_heads);
  expect_close(out, cpu_ref, c.dtype, "vs CPU span attention");
  expect_close(out, reference_by_ranges(q_host, kv, slot, span, s.q_heads), c.dtype, "vs dense masked softmax");
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

TEST_F(SparseDecodeTest, GqaRatiosBf16) {
  unsigned seed = 40;
  for (int group : {1, 4, 8}) {
    DecodeCase c;
    c.dtype = DType::BF16;
    c.shape = {6, 4 * group, 4, 128, 3000};
    c.block_size = 64;
    c.cluster = 32;
    c.seed = seed++;
    run_case(c);
  }
}

TEST_F(SparseDecodeTest, HeadDim64BothDtypes) {
  for (DType dt : {DType::F16, DType::BF16}) {
    DecodeCase c;
    c.dtype = dt;
    c.shape = {5, 16, 2, 64, 1500};
    c.block_size = 32;
    c.cluster = 16;
    c.seed = 77;
    run_case(c);
  }
}

TEST_F(SparseDecodeTest, LongContext16k) {
  DecodeCase c;
  c.shape = {3, 8, 1, 128, 16384};
  c.block_size = 256;
  c.cluster = 128;
  c.keep = 0.3;
  c.seed = 91;
  run_case(c);
}

TEST_F(SparseDecodeTest, Batch64ShortContexts) {
  DecodeCase c;
  c.dtype = DType::BF16;
  c.shape = {64, 8, 8, 64, 600};
  c.block_size = 16;
  c.cluster = 32;
  c.seed = 5;
  run_case(c);
}

TEST_F(SparseDecodeTest, DenseRowsAreTheFullSpan) {
  for (DType dt : {DType::F16, DType::BF16}) {
    DecodeCase c;
    c.dtype = dt;
    c.dense = true;
    c.shape = {4, 32, 8, 128, 4100};
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

TEST_F(SparseDecodeTest, RejectsUnsupportedHeadDim) {
  kernels::SparseDecodeParams p;
  p.head_dim = 96;
  p.q_heads = p.kv_heads = 1;
  p.max_ctx = 16;
  EXPECT_THROW(kernels::launch_sparse_decode_attention(p, DType::F16, nullptr), Error);
}

}  // namespace
}  // namespace sspan::test
