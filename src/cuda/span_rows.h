#pragma once
// The span rows of a step as the decode kernel reads them. Plain C++ (no CUDA headers),
// built in every configuration so that tests/cuda_host checks it without a device.
//
// The step's span (one row per step row), then its head span (L * Hkv rows per PerHead
// row, [row][layer][kv head]), as one CSR: tails [span rows], offsets [span rows + 1] and
// block records [nnz][1 + W] = {block id, mask words}. KV head h of step row r reads, at
// layer l, span row head_first[r] + l * Hkv + h when head_first[r] >= 0, else row r
// (the decode kernel's span_row_of).
#include <cstdint>

#include "model/backend.h"

namespace sspan::cuda {

struct SpanRowsShape {
  int rows = 0;       // step rows
  int span_rows = 0;  // rows + L * Hkv per PerHead row
  int nnz = 0;        // block entries of the span and the head span
  int block_size = 64;
  int words_per_block = 2;
  int heads_per_row = 0;  // L * Hkv
  int record_stride() const { return 1 + words_per_block; }
};

// The shape of a validated step (validate_step) on a cache of `layers` x `kv_heads`;
// throws when the head span's block size is not the span's (one block size per step).
SpanRowsShape span_rows_shape(const StepBatch& step, int layers, int kv_heads);

// Writes tails[span_rows], indptr[span_rows + 1], records[nnz * record_stride] and
// head_first[rows] (-1 for rows that are not PerHead). A step without a span (every row
// Dense) gets tails from 0 and no blocks.
void pack_span_rows(const StepBatch& step, const SpanRowsShape& shape, int32_t* tails, int32_t* indptr,
                    int32_t* records, int32_t* head_first);

// The span row KV head `kvh` of step row `row` reads at `layer`.
inline int span_row_of(const int32_t* head_first, int row, int layer, int kv_heads, int kvh) {
  return head_first[row] >= 0 ? head_first[row] + layer * kv_heads + kvh : row;
}

}  // namespace sspan::cuda
