// RMSNorm, RoPE, SwiGLU and residual add on the CPU, written as the HF LLaMA formulas.
#include <cmath>

#include "cpu/ops.h"

namespace sspan::cpu {

void rms_norm(const float* x, const float* w, float eps, float* out, int n, int H) {
#pragma omp parallel for schedule(static) if (int64_t(n) * H >= (int64_t(1) << 16))
  for (int i = 0; i < n; ++i) {
    const float* xi = x + int64_t(i) * H;
    float* oi = out + int64_t(i) * H;
    double ss = 0.0;  // sum of squares in double: stable for any H, still fp32-exact enough
    for (int j = 0; j < H; ++j) ss += double(xi[j]) * xi[j];
    const float inv = 1.0f / std::sqrt(float(ss / H) + eps);
    for (int j = 0; j < H; ++j) oi[j] = w[j] * (xi[j] * inv);
  }
}

void rope(float* x, const int32_t* pos, const float* inv_freq, int n, int heads, int D) {
  const int half = D / 2;
#pragma omp parallel for schedule(static) if (int64_t(n) * heads * D >= (int64_t(1) << 14))
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < half; ++j) {
      const float angle = float(pos[i]) * inv_freq[j];  // fp32 product, as HF computes it
      const float c = std::cos(angle), s = std::sin(angle);
      for (int h = 0; h < heads; ++h) {
        float* v = x + (int64_t(i) * heads + h) * D;
        const float a = v[j], b = v[j + half];
        v[j] = a * c - b * s;         // x * cos + rotate_half(x) * sin, first half
        v[j + half] = b * c + a * s;  // second half
      }
    }
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t count) {
#pragma omp parallel for schedule(static) if (count >= (int64_t(1) << 16))
  for (int64_t i = 0; i < count; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add(float* x, const float* y, int64_t count) {
#pragma omp parallel for schedule(static) if (count >= (int64_t(1) << 16))
  for (int64_t i = 0; i < count; ++i) x[i] += y[i];
}

}  // namespace sspan::cpu
