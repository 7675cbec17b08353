#pragma once
// Checked CUDA runtime and cuBLAS calls: a failure throws sspan::Error naming the call,
// the file:line and the runtime's error string. Library code never aborts on a device error.
// Free of fmt so that .cu files (compiled by nvcc) can include it; host .cpp files use
// SSPAN_CHECK from common/check.h as usual.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

namespace sspan::cuda {

// Throws sspan::Error(message); for .cu files, which cannot use SSPAN_CHECK.
[[noreturn]] void throw_error(const std::string& message);

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line);

}  // namespace sspan::cuda

#define SSPAN_CUDA_CHECK(call)                                                         \
  do {                                                                                 \
    cudaError_t sspan_err_ = (call);                                                   \
    if (sspan_err_ != cudaSuccess)                                                     \
      ::sspan::cuda::throw_cuda_error(sspan_err_, #call, __FILE__, __LINE__);          \
  } while (0)

#define SSPAN_CUBLAS_CHECK(call)                                                       \
  do {                                                                                 \
    cublasStatus_t sspan_st_ = (call);                                                 \
    if (sspan_st_ != CUBLAS_STATUS_SUCCESS)                                            \
      ::sspan::cuda::throw_cublas_error(sspan_st_, #call, __FILE__, __LINE__);         \
  } while (0)

// After every kernel launch: a bad configuration surfaces here, at the launch site.
#define SSPAN_CUDA_CHECK_LAUNCH(kernel_name)                                           \
  do {                                                                                 \
    cudaError_t sspan_err_ = cudaGetLastError();                                       \
    if (sspan_err_ != cudaSuccess)                                                     \
      ::sspan::cuda::throw_cuda_error(sspan_err_, "launch of " kernel_name, __FILE__,  \
                                      __LINE__);                                       \
  } while (0)

namespace sspan::cuda {

// The calling thread's current device (cudaGetDevice, checked).
inline int current_device() {
  int device = 0;
  SSPAN_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

}  // namespace sspan::cuda
