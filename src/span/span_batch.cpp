// SpanBatch: the CSR blocked span encoding of a batch of query rows.
#include <algorithm>
#include <bit>

#include "common/check.h"
#include "span/block_encoding.h"

namespace sspan {
namespace span_detail {
namespace {

// Mask with bits [lo, hi) set, 0 <= lo < hi <= 32.
uint32_t bit_run(int lo, int hi) {
  const uint32_t upto_hi = hi == 32 ? 0xFFFFFFFFu : ((1u << hi) - 1u);
  return upto_hi & ~((1u << lo) - 1u);
}

}  // namespace

void append_blocks(std::span<const PosRange> ranges, int block_size,
                   std::vector<int32_t>& block_ids, std::vector<uint32_t>& masks) {
  const int words = words_per_block(block_size);
  const size_t first_new = block_ids.size();
  for (const PosRange& r : ranges) {
    int32_t p = r.begin;
    while (p < r.end) {
      const int32_t block = p / block_size;
      if (block_ids.size() == first_new || block_ids.back() != block) {
        block_ids.push_back(block);
        masks.resize(masks.size() + size_t(words), 0u);
      }
      uint32_t* mask = masks.data() + masks.size() - size_t(words);  // [words] of this block
      const int32_t block_end = (block + 1) * block_size;
      const int32_t stop = r.end < block_end ? r.end : block_end;
      // Set bits [p, stop) of this block, word by word.
      for (int32_t q = p; q < stop;) {
        const int offset = q - block * block_size;
        const int word = offset / 32;
        const int lo = offset % 32;
        const int hi = std::min(32, lo + (stop - q));
        mask[word] |= bit_run(lo, hi);
        q += hi - lo;
      }
      p = stop;
    }
  }
}

void append_block_ranges(const int32_t* block_ids, const uint32_t* masks, int n_blocks,
                         int block_size, std::vector<PosRange>& out) {
  const int words = words_per_block(block_size);
  const int bits_per_word = block_size < 32 ? block_size : 32;
  for (int k = 0; k < n_blocks; ++k) {
    for (int w = 0; w < words; ++w) {
      uint32_t word = masks[size_t(k) * size_t(words) + size_t(w)];
      if (bits_per_word < 32) word &= (1u << bits_per_word) - 1u;
      const int32_t base = block_ids[k] * block_size + 32 * w;
      while (word != 0) {
        const int lo = std::countr_zero(word);
        const int len = std::countr_one(word >> lo);
        append_merged(out, {base + lo, base + lo + len});
        word = (lo + len == 32) ? 0u : (word & ~bit_run(lo, lo + len));
      }
    }
  }
}

}  // namespace span_detail

bool valid_block_size(int b) { return b == 16 || b == 32 || b == 64 || b == 128 || b == 256; }

SpanEvents& SpanEvents::operator+=(const SpanEvents& o) {
  sparse_lines += o.sparse_lines;
  dense_fallbacks += o.dense_fallbacks;
  unknown_anchors += o.unknown_anchors;
  malformed_lists += o.malformed_lists;
  redefined_anchors += o.redefined_anchors;
  return *this;
}

void SpanBatch::reset(int b) {
  SSPAN_CHECK(valid_block_size(b), "span block size {} is not one of 16, 32, 64, 128, 256", b);
  block_size = b;
  indptr.assign(1, 0);
  block_ids.clear();
  masks.clear();
  tail_start.clear();
  pos.clear();
}

void SpanBatch::add_dense_row(int32_t t) {
  SSPAN_CHECK(t >= 0, "span batch row: query position {} is negative", t);
  indptr.push_back(indptr.back());
  tail_start.push_back(0);
  pos.push_back(t);
}

void SpanBatch::add_row(const std::vector<PosRange>& before_tail, int32_t tail, int32_t t) {
  SSPAN_CHECK(valid_block_size(block_size), "span batch block size {} is not one of 16, 32, 64, 128, 256",
              block_size);
  SSPAN_CHECK(tail >= 0 && tail <= t, "span batch row: tail start {} outside [0, t={}]", tail, t);
  int32_t prev_end = 0;
  for (const PosRange& r : before_tail) {
    SSPAN_CHECK(r.begin >= prev_end && r.begin < r.end && r.end <= tail,
                "span batch row: range [{}, {}) is empty, unsorted, overlapping or not before the "
                "tail start {}",
                r.begin, r.end, tail);
    prev_end = r.end;
  }
  span_detail::append_blocks(before_tail, block_size, block_ids, masks);
  indptr.push_back(int32_t(block_ids.size()));
  tail_start.push_back(tail);
  pos.push_back(t);
}

void SpanBatch::add_attended_row(std::span<const PosRange> attended, int32_t t) {
  SSPAN_CHECK(!attended.empty() && attended.back().end == t + 1,
              "span batch row: the attended ranges of position {} must end with a range that ends at {} (a "
              "position always attends itself)",
              t, t + 1);
  const PosRange tail = attended.back();
  SSPAN_CHECK(tail.begin >= 0 && tail.begin <= t, "span batch row: range [{}, {}) is empty or negative", tail.begin,
              tail.end);
  before_tail_.assign(attended.begin(), attended.end() - 1);
  add_row(before_tail_, tail.begin, t);  // checks the ranges before the tail
}

std::vector<PosRange> SpanBatch::row_ranges(int r) const {
  SSPAN_CHECK(r >= 0 && r < rows(), "span batch row {} outside [0, {})", r, rows());
  std::vector<PosRange> out;
  const int32_t begin = indptr[size_t(r)];
  const int32_t n = indptr[size_t(r) + 1] - begin;
  span_detail::append_block_ranges(block_ids.data() + begin,
                                   masks.data() + size_t(begin) * size_t(words_per_block()), n,
                                   block_size, out);
  span_detail::append_merged(out, {tail_start[size_t(r)], pos[size_t(r)] + 1});
  return out;
}

int64_t SpanBatch::row_count(int r) const {
  SSPAN_CHECK(r >= 0 && r < rows(), "span batch row {} outside [0, {})", r, rows());
  const size_t words = size_t(words_per_block());
  int64_t count = 0;
  const uint32_t word_mask = block_size < 32 ? (1u << block_size) - 1u : 0xFFFFFFFFu;
  for (size_t i = size_t(indptr[size_t(r)]) * words; i < size_t(indptr[size_t(r) + 1]) * words; ++i)
    count += std::popcount(masks[i] & word_mask);
  return count + (pos[size_t(r)] - tail_start[size_t(r)] + 1);
}

bool SpanBatch::row_is_dense(int r) const {
  SSPAN_CHECK(r >= 0 && r < rows(), "span batch row {} outside [0, {})", r, rows());
  return indptr[size_t(r)] == indptr[size_t(r) + 1] && tail_start[size_t(r)] == 0;
}

void SpanBatch::validate() const {
  SSPAN_CHECK(valid_block_size(block_size), "span batch: block size {} is not one of 16, 32, 64, 128, 256",
              block_size);
  const size_t n = pos.size();
  SSPAN_CHECK(tail_start.size() == n && indptr.size() == n + 1,
              "span batch: {} positions but {} tail starts and {} row offsets (want {} and {})", n,
              tail_start.size(), indptr.size(), n, n + 1);
  const size_t words = size_t(words_per_block());
  SSPAN_CHECK(indptr[0] == 0 && size_t(indptr[n]) == block_ids.size() && masks.size() == block_ids.size() * words,
              "span batch: row offsets run from {} to {} over {} block ids with {} mask words ({} per block)",
              indptr[0], indptr[n], block_ids.size(), masks.size(), words);
  // Bits a mask word may hold: all 32, or the low 16 of a 16-position block.
  const uint32_t word_bits = block_size < 32 ? (1u << block_size) - 1u : 0xFFFFFFFFu;
  for (size_t r = 0; r < n; ++r) {
    const int32_t t = pos[r], tail = tail_start[r];
    SSPAN_CHECK(t >= 0, "span batch: row {} has a negative position {}", r, t);
    SSPAN_CHECK(tail >= 0 && tail <= t, "span batch: row {} has tail start {} outside [0, t={}]", r, tail, t);
    SSPAN_CHECK(indptr[r] <= indptr[r + 1], "span batch: row offsets decrease at row {} ({} then {})", r, indptr[r],
                indptr[r + 1]);
    int32_t prev = -1;
    for (int32_t e = indptr[r]; e < indptr[r + 1]; ++e) {
      const int32_t b = block_ids[size_t(e)];
      SSPAN_CHECK(b > prev, "span batch: row {} lists block {} after block {} (ids must ascend)", r, b, prev);
      SSPAN_CHECK(int64_t(b) * block_size < tail, "span batch: row {} lists block {} (positions from {}) at or after "
                  "its tail start {}", r, b, int64_t(b) * block_size, tail);
      prev = b;
      const uint32_t* mask = masks.data() + size_t(e) * words;
      for (size_t w = words; w-- > 0;) {  // the highest set bit decides
        SSPAN_CHECK((mask[w] & ~word_bits) == 0, "span batch: row {} block {} sets bits above position {} of a {}-"
                    "position block", r, b, block_size - 1, block_size);
        if (mask[w] == 0) continue;
        const int64_t last = int64_t(b) * block_size + 32 * int64_t(w) + (31 - std::countl_zero(mask[w]));
        SSPAN_CHECK(last < tail, "span batch: row {} block {} attends position {}, at or after its tail start {}", r,
                    b, last, tail);
        break;
      }
    }
  }
}

}  // namespace sspan
