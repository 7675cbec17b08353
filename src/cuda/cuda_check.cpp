#include "cuda/cuda_check.h"

#include "common/check.h"

namespace sspan::cuda {

void throw_error(const std::string& message) { throw Error(message); }

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  throw Error(fmt::format("CUDA error at {}:{}: {} failed: {} ({})", file, line, call,
                          cudaGetErrorString(err), cudaGetErrorName(err)));
}

void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line) {
  throw Error(fmt::format("cuBLAS error at {}:{}: {} failed: {} ({})", file, line, call,
                          cublasGetStatusString(st), static_cast<int>(st)));
}

}  // namespace sspan::cuda
