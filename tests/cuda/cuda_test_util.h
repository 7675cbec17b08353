#pragma once
// Helpers shared by the CUDA tests: skip without a device, random data representable in
// the device dtype, host <-> device copies in a given dtype (ordered after every stream's
// work and complete on return), and the element-wise comparison.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cuda/device_buffer.h"
#include "sspan/dtype.h"

namespace sspan::test {

// True when a CUDA device of compute capability >= 8.0 is present.
bool cuda_device_available();

#define SSPAN_REQUIRE_CUDA()                                                                        \
  do {                                                                                              \
    if (!::sspan::test::cuda_device_available())                                                    \
      GTEST_SKIP() << "no CUDA device of compute capability >= 8.0 (cudaGetDeviceCount found none)"; \
  } while (0)

// The stream the helpers copy on and the kernel tests launch on (non-blocking, like the
// backend's): every helper first waits for the whole device, then for its own copy.
cudaStream_t test_stream();

// Round a float through `dtype` (F16/BF16/F32).
float round_to(DType dtype, float x);

// n values uniform in [-scale, scale], each exactly representable in `dtype`.
std::vector<float> random_values(std::mt19937& rng, size_t n, DType dtype, float scale = 1.f);

// Device copies: host floats -> n elements of `dtype` at dst; and back.
void upload_as(DType dtype, const std::vector<float>& host, void* dst);
std::vector<float> download_as(DType dtype, const void* src, size_t n);

// Raw bytes to the device and back, ordered like the typed copies above.
void upload_bytes(void* dst, const void* src, size_t bytes);
void download_bytes(void* dst, const void* src, size_t bytes);

// A device buffer holding `host` (at least one element of room, so empty arrays still
// get a valid pointer).
template <class T>
cuda::DeviceBuffer device_copy(const std::vector<T>& host, const char* what) {
  cuda::DeviceBuffer buf(std::max<size_t>(1, host.size()) * sizeof(T), what);
  if (!host.empty()) upload_bytes(buf.get(), host.data(), host.size() * sizeof(T));
  return buf;
}

// Fill n elements of `dtype` at dst with NaN, so that unwritten outputs are caught.
void poison(DType dtype, void* dst, size_t n);

// ||out - ref|| / ||ref||; NaN when any output is NaN or infinite.
double rel_error(const std::vector<float>& out, const std::vector<float>& ref);

// Per-element tolerance of one op's output in `dtype` against an fp32 CPU reference on
// the same (rounded) inputs: a few units of the dtype's rounding (fp16 2^-11, bf16 2^-9).
inline double tolerance(DType dtype) { return dtype == DType::BF16 ? 2.5e-2 : dtype == DType::F16 ? 5e-3 : 1e-4; }

// Every element finite and |out - ref| <= tol * (|ref| + rms(ref)): the rms term keeps
// elements near zero from demanding a relative precision the dtype does not have, while
// one corrupt element anywhere fails. Reports the count and the worst element.
void expect_close(const std::vector<float>& out, const std::vector<float>& ref, double tol, const std::string& what);
inline void expect_close(const std::vector<float>& out, const std::vector<float>& ref, DType dtype,
                         const std::string& what) {
  expect_close(out, ref, tolerance(dtype), what);
}

}  // namespace sspan::test
