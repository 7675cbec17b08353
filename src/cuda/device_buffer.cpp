#include "cuda/device_buffer.h"

#include "common/check.h"
#include "cuda/cuda_check.h"

namespace sspan::cuda {

namespace {
double mib(size_t b) { return double(b) / (1024.0 * 1024.0); }
}  // namespace

std::string device_memory_report(size_t needed_bytes, const std::string& what) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of the query
    return fmt::format("needed {:.1f} MiB for {} (device free memory unknown)", mib(needed_bytes), what);
  }
  return fmt::format("needed {:.1f} MiB for {}, the device has {:.1f} MiB free of {:.1f} MiB",
                     mib(needed_bytes), what, mib(free_b), mib(total_b));
}

DeviceBuffer::DeviceBuffer(size_t bytes, const std::string& what) : bytes_(bytes) {
  if (bytes == 0) return;
  cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // an out-of-memory error is not sticky; clear it
    ptr_ = nullptr;
    SSPAN_FAIL("out of device memory: {}", device_memory_report(bytes, what));
  }
  SSPAN_CUDA_CHECK(err);
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);  // errors here cannot be reported from a destructor
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  SSPAN_CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

}  // namespace sspan::cuda
