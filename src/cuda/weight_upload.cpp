#include "cuda/weight_upload.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "cuda/cuda_check.h"
#include "elementwise.h"

namespace sspan::cuda {

WeightUploader::WeightUploader(size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {
  for (Slot& s : slots_) {
    s.host = PinnedBuffer(chunk_bytes_);
    s.raw = DeviceBuffer(chunk_bytes_, "weight upload staging");
    SSPAN_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  }
}

WeightUploader::~WeightUploader() {
  for (Slot& s : slots_)
    if (s.done) cudaEventDestroy(s.done);
}

void WeightUploader::upload(const TensorInfo& src, DType dst_dtype, void* dst, cudaStream_t stream) {
  SSPAN_CHECK(src.data != nullptr, "weight {}: no data (header-only checkpoint view)", src.name);
  const size_t elem = dtype_size(src.dtype);
  const size_t count = size_t(src.numel());
  SSPAN_CHECK(src.nbytes == count * elem, "weight {}: {} bytes for {} elements of {}", src.name, src.nbytes, count,
              dtype_name(src.dtype));
  const size_t chunk_elems = chunk_bytes_ / elem;
  const size_t dst_elem = dtype_size(dst_dtype);
  int k = 0;
  for (size_t first = 0; first < count; first += chunk_elems, k ^= 1) {
    const size_t n = std::min(chunk_elems, count - first);
    Slot& s = slots_[k];
    SSPAN_CUDA_CHECK(cudaEventSynchronize(s.done));  // this slot's previous chunk is through
    std::memcpy(s.host.get(), src.data + first * elem, n * elem);
    char* out = static_cast<char*>(dst) + first * dst_elem;
    if (src.dtype == dst_dtype) {
      SSPAN_CUDA_CHECK(cudaMemcpyAsync(out, s.host.get(), n * elem, cudaMemcpyHostToDevice, stream));
    } else {
      SSPAN_CUDA_CHECK(cudaMemcpyAsync(s.raw.get(), s.host.get(), n * elem, cudaMemcpyHostToDevice, stream));
      kernels::launch_convert(src.dtype, s.raw.get(), dst_dtype, out, int64_t(n), stream);
    }
    SSPAN_CUDA_CHECK(cudaEventRecord(s.done, stream));
  }
  SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace sspan::cuda
