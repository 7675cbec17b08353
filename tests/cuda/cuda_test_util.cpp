#include "cuda_test_util.h"

#include <cstring>

namespace sspan::test {

namespace {
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
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

void upload_as(DType dtype, const std::vector<float>& host, void* dst) {
  check(cudaDeviceSynchronize(), "synchronize before upload");  // backends use their own streams
  if (dtype == DType::F32) {
    check(cudaMemcpy(dst, host.data(), host.size() * 4, cudaMemcpyHostToDevice), "upload");
    return;
  }
  std::vector<uint16_t> bits(host.size());
  for (size_t i = 0; i < host.size(); ++i)
    bits[i] = dtype == DType::F16 ? float_to_half(host[i]) : float_to_bf16(host[i]);
  check(cudaMemcpy(dst, bits.data(), bits.size() * 2, cudaMemcpyHostToDevice), "upload");
}

std::vector<float> download_as(DType dtype, const void* src, size_t n) {
  check(cudaDeviceSynchronize(), "synchronize before download");
  std::vector<float> out(n);
  if (dtype == DType::F32) {
    check(cudaMemcpy(out.data(), src, n * 4, cudaMemcpyDeviceToHost), "download");
    return out;
  }
  std::vector<uint16_t> bits(n);
  check(cudaMemcpy(bits.data(), src, n * 2, cudaMemcpyDeviceToHost), "download");
  for (size_t i = 0; i < n; ++i) out[i] = dtype == DType::F16 ? half_to_float(bits[i]) : bf16_to_float(bits[i]);
  return out;
}

void poison(DType dtype, void* dst, size_t n) {
  // 0xFFFF is a NaN in fp16 and bf16; 0xFFFFFFFF in fp32.
  check(cudaDeviceSynchronize(), "synchronize before poison");
  check(cudaMemset(dst, 0xFF, n * dtype_size(dtype)), "poison");
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

void expect_close(const std::vector<float>& out, const std::vector<float>& ref, DType dtype, const std::string& what) {
  size_t bad = 0;
  for (float x : out) bad += !std::isfinite(x);
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << out.size() << " outputs are NaN or infinite";
  const double err = rel_error(out, ref);
  EXPECT_LE(err, tolerance(dtype)) << what << ": relative error norm " << err << " (dtype " << dtype_name(dtype) << ")";
}

}  // namespace sspan::test
