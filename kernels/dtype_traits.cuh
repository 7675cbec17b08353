#pragma once
// Element types the kernels are instantiated for, their fp32 conversions, and the one
// typed dispatch helper that turns a runtime DType into a template argument.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "cuda/cuda_check.h"
#include "sspan/dtype.h"

namespace sspan::kernels {

__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(float x) { return x; }

template <class T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }

// Calls f(T{}) with T = __half for F16 and __nv_bfloat16 for BF16; other dtypes are an error
// naming `what`.
template <class F>
decltype(auto) dispatch_half_types(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::F16: return f(__half{});
    case DType::BF16: return f(__nv_bfloat16{});
    default:
      cuda::throw_error(std::string(what) + ": dtype " + std::string(dtype_name(dtype)) +
                        " is not supported on the GPU (F16 or BF16 only)");
  }
}

// As above, plus F32.
template <class F>
decltype(auto) dispatch_all_types(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::F32: return f(float{});
    case DType::F16: return f(__half{});
    case DType::BF16: return f(__nv_bfloat16{});
  }
  cuda::throw_error(std::string(what) + ": unknown dtype");
}

}  // namespace sspan::kernels
