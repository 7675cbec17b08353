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

TEST(SpanBatch, EncodedBatchesValidate) {
  std::mt19937 rng(77);
  for (int block_size : {16, 32, 64, 128, 256}) {
    SpanBatch batch;
    batch.reset(block_size);
    for (int row = 0; row < 100; ++row) {
      const int32_t t = std::uniform_int_distribution<int32_t>(0, 2000)(rng);
      const int32_t tail = std::uniform_int_distribution<int32_t>(0, t)(rng);
      if (row % 5 == 0) batch.add_dense_row(t);
      else batch.add_row(random_ranges(rng, tail), tail, t);
    }
    EXPECT_NO_THROW(batch.validate()) << "B=" << block_size;
    for (int r = 0; r < batch.rows(); ++r)
      EXPECT_EQ(batch.row_is_dense(r), batch.indptr[size_t(r)] == batch.indptr[size_t(r) + 1] &&
                                           batch.tail_start[size_t(r)] == 0);
  }
  SpanBatch empty;
  EXPECT_NO_THROW(empty.validate());
}

TEST(SpanBatch, ValidateNamesEachBrokenRule) {
  // Row 0 at t = 100 attends 3, 17..19 and 40 before its tail at 90; row 1 is dense.
  SpanBatch good;
  good.reset(16);
  good.add_row({{3, 4}, {17, 20}, {40, 41}}, 90, 100);
  good.add_dense_row(50);
  ASSERT_NO_THROW(good.validate());
  EXPECT_FALSE(good.row_is_dense(0));
  EXPECT_TRUE(good.row_is_dense(1));

  auto expect_invalid = [](SpanBatch b, const char* what) { EXPECT_THROW(b.validate(), Error) << what; };
  SpanBatch b = good;
  b.block_size = 48;
  expect_invalid(b, "block size");
  b = good;
  b.tail_start.pop_back();
  expect_invalid(b, "tail starts for fewer rows than positions");
  b = good;
  b.indptr.push_back(3);
  expect_invalid(b, "one offset too many");
  b = good;
  b.indptr[0] = 1;
  expect_invalid(b, "offsets not starting at 0");
  b = good;
  b.masks.pop_back();
  expect_invalid(b, "a mask word missing");
  b = good;
  b.pos[1] = -1;
  b.tail_start[1] = 0;
  expect_invalid(b, "negative position");
  b = good;
  b.tail_start[0] = 101;
  expect_invalid(b, "tail after t");
  b = good;
  std::swap(b.block_ids[0], b.block_ids[1]);
  expect_invalid(b, "block ids out of order");
  b = good;
  b.block_ids[1] = b.block_ids[0];
  expect_invalid(b, "a block listed twice");
  b = good;
  b.block_ids[2] = 6;  // positions 96.. start after the tail at 90
  expect_invalid(b, "a block at the tail");
  b = good;
  b.block_ids[2] = 5;  // positions 80..95: bit 8 is position 88 < 90, fine ...
  ASSERT_NO_THROW(b.validate());
  b.masks[2] = 1u << 10;  // ... but position 90 is the tail's first
  expect_invalid(b, "a bit at the tail start");
  b = good;
  b.masks[0] |= 1u << 20;  // a 16-position block has no bit 20
  expect_invalid(b, "bits above a 16-position block");
  b = good;  // a third row whose offsets step back: row 1 would span [3, 1)
  b.pos.push_back(120);
  b.tail_start.push_back(100);
  b.indptr = {0, 3, 1, 3};
  expect_invalid(b, "decreasing offsets");
}

}  // namespace
}  // namespace sspan
