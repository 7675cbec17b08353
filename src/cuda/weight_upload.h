#pragma once
// Uploads checkpoint tensors (F32, F16 or BF16, straight from the mmap) to the device in
// the backend's dtype: chunks go through two pinned staging buffers (so the host copy of
// one chunk overlaps the transfer of the other) and are converted on the device.
#include <cstddef>

#include <cuda_runtime.h>

#include "cuda/device_buffer.h"
#include "sspan/checkpoint.h"

namespace sspan::cuda {

class WeightUploader {
 public:
  explicit WeightUploader(size_t chunk_bytes = size_t(16) << 20);
  ~WeightUploader();
  WeightUploader(const WeightUploader&) = delete;
  WeightUploader& operator=(const WeightUploader&) = delete;

  // dst: src.numel() elements of dst_dtype on the device. Returns when the upload is done.
  void upload(const TensorInfo& src, DType dst_dtype, void* dst, cudaStream_t stream);

 private:
  struct Slot {
    PinnedBuffer host;
    DeviceBuffer raw;            // the chunk in the source dtype, before conversion
    cudaEvent_t done = nullptr;  // the chunk's copy and conversion have finished
  };
  size_t chunk_bytes_;
  Slot slots_[2];
};

}  // namespace sspan::cuda
