#include "cuda/span_rows.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"

namespace sspan::cuda {

SpanRowsShape span_rows_shape(const StepBatch& step, int layers, int kv_heads) {
  SpanRowsShape s;
  s.rows = int(step.tokens.size());
  s.heads_per_row = layers * kv_heads;
  if (step.span) {
    s.block_size = step.span->block_size;
    s.words_per_block = step.span->words_per_block();
    s.nnz = int(step.span->block_ids.size());
  }
  int per_head = 0;
  for (const RowMode m : step.mode) per_head += m == RowMode::PerHead;
  if (per_head > 0) {
    const SpanBatch& heads = *step.head_span;  // present: validate_step
    SSPAN_CHECK(heads.block_size == s.block_size,
                "set_step: the head span has blocks of {} positions but the span of {} (one block size per step)",
                heads.block_size, s.block_size);
    s.nnz += int(heads.block_ids.size());
  }
  s.span_rows = s.rows + per_head * s.heads_per_row;
  return s;
}

void pack_span_rows(const StepBatch& step, const SpanRowsShape& shape, int32_t* tails, int32_t* indptr,
                    int32_t* records, int32_t* head_first) {
  const int n = shape.rows, rec = shape.record_stride();
  const size_t words = size_t(shape.words_per_block);
  // Rows [first, first + sb.rows()) of the span rows and their blocks from entry `entry` on.
  const auto pack = [&](const SpanBatch& sb, int first, int entry) {
    std::copy(sb.tail_start.begin(), sb.tail_start.end(), tails + first);
    for (int r = 0; r <= sb.rows(); ++r) indptr[first + r] = entry + sb.indptr[size_t(r)];
    for (size_t e = 0; e < sb.block_ids.size(); ++e) {
      int32_t* record = records + (int64_t(entry) + int64_t(e)) * rec;
      record[0] = sb.block_ids[e];
      std::memcpy(record + 1, &sb.masks[e * words], sizeof(uint32_t) * words);
    }
  };
  int main_nnz = 0;
  if (step.span) {
    pack(*step.span, 0, 0);
    main_nnz = int(step.span->block_ids.size());
  } else {  // every row Dense: no blocks, tails from 0
    std::fill(tails, tails + n, 0);
    std::fill(indptr, indptr + n + 1, 0);
  }
  bool per_head = false;
  for (int r = 0, k = 0; r < n; ++r) {
    const bool own = step.mode[size_t(r)] == RowMode::PerHead;
    head_first[r] = own ? n + shape.heads_per_row * k++ : -1;
    per_head |= own;
  }
  if (per_head) pack(*step.head_span, n, main_nnz);
}

}  // namespace sspan::cuda
