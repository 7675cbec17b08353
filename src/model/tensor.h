#pragma once
// A typed, contiguous, row-major view of memory owned by a backend (host or device).
// `storage` keeps the owner alive: an mmap of a checkpoint, a host vector, a device
// allocation.
#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "sspan/dtype.h"

namespace sspan {

enum class Device { CPU, CUDA };

struct Tensor {
  std::shared_ptr<void> storage;
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int rank = 0;
  std::array<int64_t, 5> shape{};
  // A CPU matmul weight packed in groups of this many rows (src/cpu/matmul_kernels.h);
  // 0: row-major, as the comment above says of every other tensor.
  int row_group = 0;

  int64_t dim(int i) const { return shape[i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  template <class T> T* ptr() const { return static_cast<T*>(data); }
  std::string shape_str() const;
};

}  // namespace sspan
