#include "cuda_test_util.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace sspan::test {

namespace {
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Wait for every stream (the backends' too), then run `copy` on the test stream and wait
// for it: a pageable cudaMemcpy may return before its DMA lands, so a kernel on another
// stream could otherwise read the old bytes.
template <class F>
void ordered(F&& copy, const char* what) {
  check(cudaDeviceSynchronize(), what);
  check(copy(test_stream()), what);
  check(cudaStreamSynchronize(test_stream()), what);
}
}  // namespace

bool cuda_device_available() {
  static const bool available = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      cudaGetLastError();
      return false;
    }
    cudaDeviceProp prop{};
    return cudaGetDeviceProperties(&prop, 0) == cudaSuccess && prop.major >= 8;
  }();
  return available;
}

cudaStream_t test_stream() {
  static const cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "create the test stream");
    return s;
  }();
  return stream;
}

float round_to(DType dtype, float x) {
  switch (dtype) {
    case DType::F16: return half_to_float(float_to_half(x));
    case DType::BF16: return bf16_to_float(float_to_bf16(x));
    case DType::F32: return x;
  }
  return x;
}

std::vector<float> random_values(std::mt19937& rng, size_t n, DType dtype, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = round_to(dtype, u(rng));
  return v;
}

void upload_bytes(void* dst, const void* src, size_t bytes) {
  ordered([&](cudaStream_t s) { return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s); }, "upload");
}

void download_bytes(void* dst, const void* src, size_t bytes) {
  ordered([&](cudaStream_t s) { return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s); }, "download");
}

void upload_as(DType dtype, const std::vector<float>& host, void* dst) {
  if (dtype == DType::F32) return upload_bytes(dst, host.data(), host.size() * 4);
  std::vector<uint16_t> bits(host.size());
  for (size_t i = 0; i < host.size(); ++i)
    bits[i] = dtype == DType::F16 ? float_to_half(host[i]) : float_to_bf16(host[i]);
  upload_bytes(dst, bits.data(), bits.size() * 2);
}

std::vector<float> download_as(DType dtype, const void* src, size_t n) {
  std::vector<float> out(n);
  if (dtype == DType::F32) {
    download_bytes(out.data(), src, n * 4);
    return out;
  }
  std::vector<uint16_t> bits(n);
  download_bytes(bits.data(), src, n * 2);
  for (size_t i = 0; i < n; ++i) out[i] = dtype == DType::F16 ? half_to_float(bits[i]) : bf16_to_float(bits[i]);
  return out;
}

void poison(DType dtype, void* dst, size_t n) {
  // 0xFFFF is a NaN in fp16 and bf16; 0xFFFFFFFF in fp32.
  ordered([&](cudaStream_t s) { return cudaMemsetAsync(dst, 0xFF, n * dtype_size(dtype), s); }, "poison");
}

double rel_error(const std::vector<float>& out, const std::vector<float>& ref) {
  if (out.size() != ref.size()) return NAN;
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return NAN;
    const double d = double(out[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

void expect_close(const std::vector<float>& out, const std::vector<float>& ref, double tol, const std::string& what) {
  ASSERT_EQ(out.size(), ref.size()) << what << ": output and reference sizes differ";
  double sum_sq = 0;
  for (float r : ref) sum_sq += double(r) * double(r);
  const double rms = ref.empty() ? 0.0 : std::sqrt(sum_sq / double(ref.size()));
  size_t non_finite = 0, outside = 0, worst = 0;
  double worst_ratio = 0;  // |out - ref| / allowed
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) {
      ++non_finite;
      continue;
    }
    const double allowed = tol * (std::abs(double(ref[i])) + rms) + 1e-30;
    const double ratio = std::abs(double(out[i]) - double(ref[i])) / allowed;
    outside += ratio > 1.0;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  EXPECT_EQ(non_finite, 0u) << what << ": " << non_finite << " of " << out.size() << " outputs are NaN or infinite";
  EXPECT_EQ(outside, 0u) << what << ": " << outside << " of " << out.size() << " elements outside " << tol
                         << " x (|ref| + rms " << rms << "); worst element " << worst << ": " << out[worst]
                         << " vs " << ref[worst] << " (" << worst_ratio << " x the allowance)";
}

}  // namespace sspan::test
