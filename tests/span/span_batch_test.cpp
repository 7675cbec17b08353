// The blocked encoding: random range sets survive encode -> decode exactly for every
// block size, including lengths that are not multiples of the block size.
#include <gtest/gtest.h>

#include <random>

#include "sspan/error.h"
#include "sspan/span.h"

namespace sspan {
namespace {

// Random sorted, disjoint, non-adjacent ranges inside [0, limit).
std::vector<PosRange> random_ranges(std::mt19937& rng, int32_t limit) {
  std::vector<PosRange> out;
  int32_t p = 0;
  std::uniform_int_distribution<int32_t> gap(1, 90), len(1, 140);
  while (true) {
    p += gap(rng) - (out.empty() ? 1 : 0);
    const int32_t end = std::min(limit, p + len(rng));
    if (p >= end) break;
    out.push_back({p, end});
    p = end;
  }
  return out;
}

int64_t count_of(const std::vector<PosRange>& ranges) {
  int64_t n = 0;
  for (const auto& r : ranges) n += r.end - r.begin;
  return n;
}

TEST(SpanBatch, RandomRoundTripAllBlockSizes) {
  std::mt19937 rng(1234);
  for (int block_size : {16, 32, 64, 128, 256}) {
    SpanBatch batch;
    batch.reset(block_size);
    std::vector<std::vector<PosRange>> want;
    for (int row = 0; row < 300; ++row) {
      const int32_t t = std::uniform_int_distribution<int32_t>(0, 3000)(rng);
      const int32_t tail = std::uniform_int_distribution<int32_t>(0, t)(rng);
      auto before = random_ranges(rng, tail);
      batch.add_row(before, tail, t);
      // The expected decode: the ranges, then the tail, merged where they touch.
      if (!before.empty() && before.back().end == tail)
        before.back().end = t + 1;
      else
        before.push_back({tail, t + 1});
      want.push_back(before);
    }
    ASSERT_EQ(batch.rows(), 300);
    ASSERT_EQ(batch.indptr.size(), 301u);
    ASSERT_EQ(batch.masks.size(), batch.block_ids.size() * size_t(batch.words_per_block()));
    for (int r = 0; r < batch.rows(); ++r) {
      EXPECT_EQ(batch.row_ranges(r), want[size_t(r)]) << "B=" << block_size << " row " << r;
      EXPECT_EQ(batch.row_count(r), count_of(want[size_t(r)]));
      // Blocks ascend within a row and hold only positions before the tail.
      for (int32_t k = batch.indptr[size_t(r)] + 1; k < batch.indptr[size_t(r) + 1]; ++k)
        EXPECT_LT(batch.block_ids[size_t(k) - 1], batch.block_ids[size_t(k)]);
      if (batch.indptr[size_t(r) + 1] > batch.indptr[size_t(r)]) {
        EXPECT_LT(batch.block_ids[size_t(batch.indptr[size_t(r) + 1]) - 1] * block_size,
                  batch.tail_start[size_t(r)]);
      }
    }
  }
}

TEST(SpanBatch, MaskLayout) {
  SpanBatch b16, b64;
  b16.reset(16);
  b64.reset(64);
  // positions 3, 17..19 and 40 with tail 100
  const std::vector<PosRange> ranges{{3, 4}, {17, 20}, {40, 41}};
  b16.add_row(ranges, 100, 120);
  b64.add_row(ranges, 100, 120);
  EXPECT_EQ(b16.block_ids, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(b16.masks, (std::vector<uint32_t>{1u << 3, 0b1110u, 1u << 8}));
  EXPECT_EQ(b64.block_ids, (std::vector<int32_t>{0}));
  EXPECT_EQ(b64.masks, (std::vector<uint32_t>{(1u << 3) | (0b111u << 17), 1u << 8}));
}

TEST(SpanBatch, DenseRow) {
  SpanBatch batch;
  batch.reset(64);
  batch.add_dense_row(77);
  EXPECT_EQ(batch.indptr, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(batch.tail_start, (std::vector<int32_t>{0}));
  EXPECT_EQ(batch.row_ranges(0), (std::vector<PosRange>{{0, 78}}));
  EXPECT_EQ(batch.row_count(0), 78);
}

TEST(SpanBatch, FullBlocksAndBoundaries) {
  for (int block_size : {16, 32, 64, 128, 256}) {
    SpanBatch batch;
    batch.reset(block_size);
    const int32_t B = block_size;
    const std::vector<PosRange> ranges{{0, B}, {2 * B - 1, 2 * B + 1}, {4 * B, 5 * B}};
    batch.add_row(ranges, 5 * B + 3, 5 * B + 10);
    EXPECT_EQ(batch.block_ids, (std::vector<int32_t>{0, 1, 2, 4}));
    EXPECT_EQ(batch.row_ranges(0),
              (std::vector<PosRange>{{0, B}, {2 * B - 1, 2 * B + 1}, {4 * B, 5 * B}, {5 * B + 3, 5 * B + 11}}));
  }
}

TEST(SpanBatch, InvalidInputIsAnError) {
  SpanBatch batch;
  EXPECT_THROW(batch.reset(48), Error);
  batch.reset(32);
  EXPECT_THROW(batch.add_row({{5, 3}}, 10, 12), Error);          // empty range
  EXPECT_THROW(batch.add_row({{0, 4}, {2, 6}}, 10, 12), Error);  // overlapping
  EXPECT_THROW(batch.add_row({{0, 11}}, 10, 12), Error);         // past the tail
  EXPECT_THROW(batch.add_row({}, 13, 12), Error);                // tail after t
  EXPECT_THROW(batch.add_dense_row(-1), Error);
  EXPECT_THROW(batch.row_ranges(0), Error);
  EXPECT_EQ(batch.rows(), 0);
}

}  // namespace
}  // namespace sspan
