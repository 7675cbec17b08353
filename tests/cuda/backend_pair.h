#pragma once
// The CPU backend (the reference) and the CUDA backend side by side, fed the same values:
// every random input is rounded to the device dtype first, so the only difference left
// is the arithmetic.
#include <memory>
#include <random>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda_test_util.h"
#include "model/backend.h"
#include "sspan/checkpoint.h"

namespace sspan::test {

struct TensorPair {
  Tensor cpu, gpu;
};

class BackendPair {
 public:
  explicit BackendPair(DType dtype, CudaBackendOptions options = {})
      : dtype(dtype), cpu(make_cpu_backend(2)), gpu(make_cuda_backend(dtype, 0, options)) {}

  // A weight with the given shape and values, loaded from an fp32 "checkpoint" tensor.
  TensorPair weight(const std::vector<int64_t>& shape, const std::vector<float>& values) {
    host_weights_.push_back(std::make_unique<std::vector<float>>(values));
    TensorInfo info;
    info.name = "test.weight";
    info.dtype = DType::F32;
    info.shape = shape;
    info.nbytes = values.size() * sizeof(float);
    info.data = reinterpret_cast<const std::byte*>(host_weights_.back()->data());
    return {cpu->load_weight(info), gpu->load_weight(info)};
  }

  // An activation buffer filled with `values` (or poisoned on the device when empty).
  TensorPair activation(std::initializer_list<int64_t> shape, const std::vector<float>& values = {}) {
    const DType gd = dtype;
    TensorPair t{cpu->alloc(shape, DType::F32), gpu->alloc(shape, gd)};
    if (!values.empty()) {
      std::copy(values.begin(), values.end(), t.cpu.ptr<float>());
      upload_as(gd, values, t.gpu.data);
    } else {
      poison(gd, t.gpu.data, size_t(t.gpu.numel()));
    }
    return t;
  }

  // An fp32 activation on both sides (e.g. logits).
  TensorPair activation_f32(std::initializer_list<int64_t> shape) {
    TensorPair t{cpu->alloc(shape, DType::F32), gpu->alloc(shape, DType::F32)};
    poison(DType::F32, t.gpu.data, size_t(t.gpu.numel()));
    return t;
  }

  void set_step(const StepBatch& step) {
    cpu->set_step(step);
    gpu->set_step(step);
  }
  void alloc_kv_cache(const KvCacheShape& s) {
    cpu->alloc_kv_cache(s);
    gpu->alloc_kv_cache(s);
  }

  // The first `count` values of each side (count 0: all).
  std::vector<float> cpu_values(const TensorPair& t, size_t count = 0) const {
    const size_t n = count ? count : size_t(t.cpu.numel());
    return std::vector<float>(t.cpu.ptr<float>(), t.cpu.ptr<float>() + n);
  }
  std::vector<float> gpu_values(const TensorPair& t, size_t count = 0) const {
    return download_as(t.gpu.dtype, t.gpu.data, count ? count : size_t(t.gpu.numel()));
  }

  DType dtype;
  std::unique_ptr<Backend> cpu, gpu;

 private:
  std::vector<std::unique_ptr<std::vector<float>>> host_weights_;
};

}  // namespace sspan::test
