#pragma once
// The per-step metadata on the device, in one fixed-capacity buffer filled by one async
// copy per step from one pinned staging buffer. Fixed capacity keeps every device pointer
// stable between steps, so kernels captured in a CUDA graph read the new step's values.
//
// Layout (int32 words; capacities R rows, P span rows, K block entries):
//   tokens[R] | pos[R] | slot[R] | logit_rows[R] | prefill_tiles[R][2] | decode_rows[R]
//   | head_first[R] | mass_record[R] | mass_rows[R] | query_rows[R]
//   | tail_start[P] | indptr[P + 1] | block records[K][1 + W]
// The span rows are the step's span (one per step row), then its head span (L * Hkv per
// PerHead row, [row][layer][kv head]), one CSR over both (src/cuda/span_rows.h). A block
// record is {block id, mask word 0 .. W-1}; W = words per block of this step's block
// size. Only the used prefix of the records is copied.
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "cuda/device_buffer.h"
#include "cuda/row_routes.h"
#include "model/backend.h"

namespace sspan::cuda {

// What upload learned about the step, on the host.
struct StepInfo {
  int rows = 0;
  int logit_rows = 0;
  int block_size = 64;
  int words_per_block = 2;
  int nnz = 0;                  // listed block entries of the span and the head span
  int span_rows = 0;            // rows + L * Hkv per PerHead row
  int mass_rows = 0;            // rows whose attention mass is recorded
  int query_rows = 0;           // rows whose last-layer query is kept
  RowRoutes routes;             // prefill tiles and decode rows (route_rows)
  int max_decode_items = 0;     // most 32-token work items of any decode row
  bool distinct_slots = false;  // one row per slot: a decode-shaped step
};

// Device pointers into the step buffer (valid until the capacity grows).
struct StepDevice {
  const int32_t* tokens = nullptr;         // [rows]
  const int32_t* pos = nullptr;            // [rows]
  const int32_t* slot = nullptr;           // [rows]
  const int32_t* tail_start = nullptr;     // [span rows]
  const int32_t* indptr = nullptr;         // [span rows + 1]
  const int32_t* head_first = nullptr;     // [rows] first head-span row of a PerHead row, else -1
  const int32_t* mass_record = nullptr;    // [rows] record index of a mass row, else -1
  const int32_t* mass_rows = nullptr;      // [mass rows] step row of each record
  const int32_t* query_rows = nullptr;     // [query rows]
  const int32_t* logit_rows = nullptr;     // [logit_rows]
  const int32_t* prefill_tiles = nullptr;  // [tiles][2]: first row, row count
  const int32_t* decode_rows = nullptr;    // [decode rows]: step rows of the decode kernel
  const int32_t* block_ids = nullptr;      // [nnz] with stride 1 + W
  const uint32_t* masks = nullptr;         // [nnz][W] with stride 1 + W
  int record_stride = 0;                   // 1 + W
};

class StepBuffers {
 public:
  // Grow to at least these capacities (span rows: at least max_rows); returns true when
  // the buffers moved (device pointers changed, captured graphs must be dropped).
  bool reserve(int max_rows, int max_blocks, int max_span_rows = 0);
  // Validate `step` (validate_step), route its rows (route_rows with `min_prefill_run`),
  // pack it into the pinned staging buffer and enqueue one copy on `stream`. Waits for the
  // previous step's copy before overwriting the staging buffer. Returns true when the
  // buffers grew.
  bool upload(const StepBatch& step, const StepLimits& limits, int min_prefill_run, cudaStream_t stream);

  const StepInfo& info() const { return info_; }
  const StepDevice& device() const { return dev_; }
  // Host copy of the last step's rows (for host-side checks), valid until the next upload.
  const int32_t* host_tokens() const { return host_words() + off_tokens(); }

 private:
  int64_t off_tokens() const { return 0; }
  int64_t off_pos() const { return int64_t(cap_rows_); }
  int64_t off_slot() const { return 2 * int64_t(cap_rows_); }
  int64_t off_logit_rows() const { return 3 * int64_t(cap_rows_); }
  int64_t off_tiles() const { return 4 * int64_t(cap_rows_); }
  int64_t off_decode_rows() const { return 6 * int64_t(cap_rows_); }
  int64_t off_head_first() const { return 7 * int64_t(cap_rows_); }
  int64_t off_mass_record() const { return 8 * int64_t(cap_rows_); }
  int64_t off_mass_rows() const { return 9 * int64_t(cap_rows_); }
  int64_t off_query_rows() const { return 10 * int64_t(cap_rows_); }
  int64_t off_tail() const { return 11 * int64_t(cap_rows_); }
  int64_t off_indptr() const { return off_tail() + int64_t(cap_span_rows_); }
  int64_t off_records() const { return off_indptr() + int64_t(cap_span_rows_) + 1; }
  int64_t total_words() const;
  int32_t* host_words() const { return staging_.as<int32_t>(); }
  void point_device();

  int cap_rows_ = 0, cap_blocks_ = 0, cap_span_rows_ = 0;
  PinnedBuffer staging_;
  DeviceBuffer device_;
  cudaEvent_t copied_ = nullptr;  // the last upload's copy finished reading the staging buffer
  StepInfo info_;
  StepDevice dev_;
  std::vector<char> slot_seen_;  // [slots] scratch of upload

 public:
  StepBuffers() = default;
  ~StepBuffers();
  StepBuffers(const StepBuffers&) = delete;
  StepBuffers& operator=(const StepBuffers&) = delete;
};

}  // namespace sspan::cuda
