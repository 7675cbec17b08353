#pragma once
// The per-step metadata on the device, in one fixed-capacity buffer filled by one async
// copy per step from one pinned staging buffer. Fixed capacity keeps every device pointer
// stable between steps, so kernels captured in a CUDA graph read the new step's values.
//
// Layout (int32 words; capacities R rows, K block entries):
//   tokens[R] | pos[R] | slot[R] | tail_start[R] | indptr[R + 1] | logit_rows[R]
//   | prefill_tiles[R][2] | decode_rows[R] | block records[K][1 + W]
// A block record is {block id, mask word 0 .. W-1}; W = words per block of this step's
// block size. Only the used prefix of the records is copied.
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
  int nnz = 0;                  // listed block entries
  RowRoutes routes;             // prefill tiles and decode rows (route_rows)
  int max_decode_items = 0;     // most 32-token work items of any decode row
  bool distinct_slots = false;  // one row per slot: a decode-shaped step
};

// Device pointers into the step buffer (valid until the capacity grows).
struct StepDevice {
  const int32_t* tokens = nullptr;         // [rows]
  const int32_t* pos = nullptr;            // [rows]
  const int32_t* slot = nullptr;           // [rows]
  const int32_t* tail_start = nullptr;     // [rows]
  const int32_t* indptr = nullptr;         // [rows + 1]
  const int32_t* logit_rows = nullptr;     // [logit_rows]
  const int32_t* prefill_tiles = nullptr;  // [tiles][2]: first row, row count
  const int32_t* decode_rows = nullptr;    // [decode rows]: step rows of the decode kernel
  const int32_t* block_ids = nullptr;      // [nnz] with stride 1 + W
  const uint32_t* masks = nullptr;         // [nnz][W] with stride 1 + W
  int record_stride = 0;                   // 1 + W
};

class StepBuffers {
 public:
  // Grow to at least these capacities; returns true when the buffers moved (device
  // pointers changed, captured graphs must be dropped).
  bool reserve(int max_rows, int max_blocks);
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
  int64_t off_tail() const { return 3 * int64_t(cap_rows_); }
  int64_t off_indptr() const { return 4 * int64_t(cap_rows_); }
  int64_t off_logit_rows() const { return 5 * int64_t(cap_rows_) + 1; }
  int64_t off_tiles() const { return 6 * int64_t(cap_rows_) + 1; }
  int64_t off_decode_rows() const { return 8 * int64_t(cap_rows_) + 1; }
  int64_t off_records() const { return 9 * int64_t(cap_rows_) + 1; }
  int64_t total_words() const;
  int32_t* host_words() const { return staging_.as<int32_t>(); }
  void point_device();

  int cap_rows_ = 0, cap_blocks_ = 0;
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
