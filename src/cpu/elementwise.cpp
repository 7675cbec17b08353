// RMSNorm, RoPE, SwiGLU and residual add on the CPU, written as the HF LLaMA formulas.
#include <cmath>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace sspan::cpu {

// Elements per chunk below which a thread costs more than it saves.
constexpr int64_t kMinChunk = int64_t(1) << 15;

void rms_norm(const float* x, const float* w, float eps, float* out, int n, int H) {
  parallel_chunks(n, std::max<int64_t>(1, kMinChunk / H), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * H;
      float* oi = out + i * H;
      double ss = 0.0;  // sum of squares in double: stable for any H, still fp32-exact enough
      for (int j = 0; j < H; ++j) ss += double(xi[j]) * xi[j];
      const float inv = 1.0f / std::sqrt(float(ss / H) + eps);
      for (int j = 0; j < H; ++j) oi[j] = w[j] * (xi[j] * inv);
    }
  });
}

void rope_table(const int32_t* pos, const float* inv_freq, int n, int D, float* cos_sin) {
  const int half = D / 2;
  // The sines and cosines dominate: a row is worth about `half` of them.
  parallel_chunks(n, std::max<int64_t>(1, (kMinChunk / 32) / half), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* c = cos_sin + i * D;
      for (int j = 0; j < half; ++j) {
        const float angle = float(pos[i]) * inv_freq[j];  // fp32 product, as HF computes it
        c[j] = std::cos(angle), c[half + j] = std::sin(angle);
      }
    }
  });
}

void rope(float* x, const float* cos_sin, int n, int heads, int D) {
  const int half = D / 2;
  parallel_chunks(n, std::max<int64_t>(1, kMinChunk / (heads * D)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* c = cos_sin + i * D;
      const float* s = c + half;
      for (int h = 0; h < heads; ++h) {
        float* v = x + (i * heads + h) * D;
        for (int j = 0; j < half; ++j) {
          const float a = v[j], b = v[j + half];
          v[j] = a * c[j] - b * s[j];         // x * cos + rotate_half(x) * sin, first half
          v[j + half] = b * c[j] + a * s[j];  // second half
        }
      }
    }
  });
}

void swiglu(const float* gate, const float* up, float* out, int64_t count) {
  parallel_chunks(count, kMinChunk / 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void add(float* x, const float* y, int64_t count) {
  parallel_chunks(count, kMinChunk, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] += y[i];
  });
}

}  // namespace sspan::cpu
