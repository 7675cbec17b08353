#pragma once
// Turning sorted position ranges into the blocked form (block ids + in-block bitmasks)
// and back. Shared by SpanBatch rows and the per-line cache of SpanState.
#include <cstdint>
#include <span>
#include <vector>

#include "sspan/span.h"

namespace sspan::span_detail {

// Appends the blocks covering `ranges` (sorted, disjoint, half-open) to `block_ids` and
// their masks to `masks` (words_per_block words each). Blocks already in `block_ids`
// before this call are never touched.
void append_blocks(std::span<const PosRange> ranges, int block_size,
                   std::vector<int32_t>& block_ids, std::vector<uint32_t>& masks);

// Appends to `out` the ranges set in `n_blocks` blocks, merging with out.back() when
// adjacent. `masks` holds n_blocks * words_per_block words.
void append_block_ranges(const int32_t* block_ids, const uint32_t* masks, int n_blocks,
                         int block_size, std::vector<PosRange>& out);

// Appends [r.begin, r.end) to `out`, merging with out.back() when they touch.
inline void append_merged(std::vector<PosRange>& out, PosRange r) {
  if (r.begin >= r.end) return;
  if (!out.empty() && out.back().end >= r.begin) {
    if (r.end > out.back().end) out.back().end = r.end;
  } else {
    out.push_back(r);
  }
}

inline int words_per_block(int block_size) { return block_size <= 32 ? 1 : block_size / 32; }

}  // namespace sspan::span_detail
