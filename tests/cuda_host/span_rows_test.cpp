// The span rows the decode kernel reads: every (row, layer, KV head) of a step decodes, from
// the packed CSR, to the set the CPU op attends (the span row, or the PerHead row's own
// head-span row [row][layer][kv head], as cpu::AttendedRanges::assign_per_head reads it).
#include "cuda/span_rows.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "span/block_encoding.h"
#include "sspan/error.h"

namespace sspan::cuda {
namespace {

// The attended ranges of span row `sr` (ending at position t) from the packed arrays.
std::vector<PosRange> decode_row(const SpanRowsShape& shape, const std::vector<int32_t>& tails,
                                 const std::vector<int32_t>& indptr, const std::vector<int32_t>& records, int sr,
                                 int32_t t) {
  std::vector<int32_t> ids;
  std::vector<uint32_t> masks;
  for (int e = indptr[size_t(sr)]; e < indptr[size_t(sr) + 1]; ++e) {
    const int32_t* record = &records[size_t(e) * size_t(shape.record_stride())];
    ids.push_back(record[0]);
    for (int w = 0; w < shape.words_per_block; ++w) masks.push_back(uint32_t(record[1 + w]));
  }
  std::vector<PosRange> out;
  span_detail::append_block_ranges(ids.data(), masks.data(), int(ids.size()), shape.block_size, out);
  span_detail::append_merged(out, {tails[size_t(sr)], t + 1});
  return out;
}

std::vector<PosRange> some_ranges(std::mt19937& rng, int32_t limit) {
  std::vector<PosRange> out;
  for (int32_t p = 0; p < limit;) {
    const int32_t len = int32_t(rng() % 7) + 1, gap = int32_t(rng() % 40) + 1;
    if (p + len > limit) break;
    out.push_back({p, p + len});
    p += len + gap;
  }
  return out;
}

TEST(SpanRows, EveryRowLayerAndHeadReadsItsOwnSet) {
  std::mt19937 rng(3);
  const int L = 2, Hkv = 3;
  for (const int block : {16, 64, 256}) {
    SCOPED_TRACE("block " + std::to_string(block));
    // Rows: Sparse, PerHead, Dense, PerHead (two sequences' positions).
    const std::vector<int32_t> tokens{1, 2, 3, 4}, pos{300, 200, 90, 410}, slot{0, 1, 2, 3};
    const std::vector<RowMode> mode{RowMode::Sparse, RowMode::PerHead, RowMode::Dense, RowMode::PerHead};
    SpanBatch span, heads;
    span.reset(block);
    heads.reset(block);
    span.add_row(some_ranges(rng, 280), 280, pos[0]);
    span.add_dense_row(pos[1]);
    span.add_dense_row(pos[2]);
    span.add_dense_row(pos[3]);
    for (const int r : {1, 3})
      for (int i = 0; i < L * Hkv; ++i) {
        const int32_t tail = pos[size_t(r)] - 3 - 11 * i;
        heads.add_row(some_ranges(rng, tail), tail, pos[size_t(r)]);
      }
    const StepBatch step{tokens, pos, slot, mode, &span, {}, &heads};
    ASSERT_NO_THROW(validate_step(step, {4, 512, 0, L, Hkv}));
    const SpanRowsShape shape = span_rows_shape(step, L, Hkv);
    EXPECT_EQ(shape.span_rows, 4 + 2 * L * Hkv);
    EXPECT_EQ(shape.nnz, int(span.block_ids.size() + heads.block_ids.size()));
    std::vector<int32_t> tails(size_t(shape.span_rows), -1), indptr(size_t(shape.span_rows) + 1, -1),
        records(size_t(shape.nnz) * size_t(shape.record_stride()), -1), head_first(4, -2);
    pack_span_rows(step, shape, tails.data(), indptr.data(), records.data(), head_first.data());
    EXPECT_EQ(head_first, (std::vector<int32_t>{-1, 4, -1, 4 + L * Hkv}));
    for (int r = 0, k = 0; r < 4; ++r) {
      const bool own = mode[size_t(r)] == RowMode::PerHead;
      for (int l = 0; l < L; ++l)
        for (int h = 0; h < Hkv; ++h) {
          // What the CPU op reads for (r, l, h).
          const std::vector<PosRange> want = own ? heads.row_ranges((k * L + l) * Hkv + h) : span.row_ranges(r);
          const int sr = span_row_of(head_first.data(), r, l, Hkv, h);
          EXPECT_EQ(decode_row(shape, tails, indptr, records, sr, pos[size_t(r)]), want)
              << "row " << r << " layer " << l << " KV head " << h;
        }
      k += own;
    }
  }
}

TEST(SpanRows, AStepWithoutASpanIsDenseAndHeadSpansShareTheBlockSize) {
  const std::vector<int32_t> tokens{1, 2}, pos{5, 9}, slot{0, 1};
  const std::vector<RowMode> dense{RowMode::Dense, RowMode::Dense};
  const StepBatch plain{tokens, pos, slot, dense, nullptr, {}};
  const SpanRowsShape shape = span_rows_shape(plain, 2, 2);
  EXPECT_EQ(shape.span_rows, 2);
  EXPECT_EQ(shape.nnz, 0);
  std::vector<int32_t> tails(2, -1), indptr(3, -1), head_first(2, -2);
  pack_span_rows(plain, shape, tails.data(), indptr.data(), nullptr, head_first.data());
  EXPECT_EQ(tails, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(indptr, (std::vector<int32_t>{0, 0, 0}));
  EXPECT_EQ(head_first, (std::vector<int32_t>{-1, -1}));

  SpanBatch span, heads;
  span.reset(64);
  heads.reset(16);
  span.add_dense_row(5);
  span.add_dense_row(9);
  for (int i = 0; i < 4; ++i) heads.add_dense_row(9);
  const std::vector<RowMode> mode{RowMode::Dense, RowMode::PerHead};
  EXPECT_THROW(span_rows_shape({tokens, pos, slot, mode, &span, {}, &heads}, 2, 2), Error);
}

}  // namespace
}  // namespace sspan::cuda
