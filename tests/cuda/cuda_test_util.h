#pragma once
// Helpers shared by the CUDA tests: skip without a device, random data representable in
// the device dtype, host <-> device copies in a given dtype, and the error norm.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "sspan/dtype.h"

namespace sspan::test {

// True when a CUDA device of compute capability >= 8.0 is present.
bool cuda_device_available();

#define SSPAN_REQUIRE_CUDA()                                                                        \
  do {                                                                                              \
    if (!::sspan::test::cuda_device_available())                                                    \
      GTEST_SKIP() << "no CUDA device of compute capability >= 8.0 (cudaGetDeviceCount found none)"; \
  } while (0)

// Round a float through `dtype` (F16/BF16/F32).
float round_to(DType dtype, float x);

// n values uniform in [-scale, scale], each exactly representable in `dtype`.
std::vector<float> random_values(std::mt19937& rng, size_t n, DType dtype, float scale = 1.f);

// Device copies: host floats -> n elements of `dtype` at dst; and back.
void upload_as(DType dtype, const std::vector<float>& host, void* dst);
std::vector<float> download_as(DType dtype, const void* src, size_t n);

// Fill n elements of `dtype` at dst with NaN, so that unwritten outputs are caught.
void poison(DType dtype, void* dst, size_t n);

// ||out - ref|| / ||ref||; NaN when any output is NaN or infinite.
double rel_error(const std::vector<float>& out, const std::vector<float>& ref);

// The tolerance of the error norm for outputs in `dtype`.
inline double tolerance(DType dtype) { return dtype == DType::BF16 ? 1e-2 : 2e-3; }

// Expect every value finite and the error norm within the dtype's tolerance.
void expect_close(const std::vector<float>& out, const std::vector<float>& ref, DType dtype, const std::string& what);

}  // namespace sspan::test
