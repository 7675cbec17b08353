// RMSNorm, RoPE, SwiGLU and residual add on the CPU, written as the HF LLaMA formulas.
#include <bit>
#include <cmath>
#include <cstdint>

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
      // Sum of squares in double (stable for any H), in 8 independent partial sums: one
      // chain would wait out the add latency at every element (4 us a call at 16 rows of
      // the 110M shape).
      double part[8] = {};
      int j = 0;
      for (; j + 8 <= H; j += 8)
        for (int l = 0; l < 8; ++l) part[l] += double(xi[j + l]) * xi[j + l];
      for (; j < H; ++j) part[0] += double(xi[j]) * xi[j];
      const double ss = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
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

// exp(y) for y <= 0, Cephes' expf: y = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts),
// exp(r) = 1 + r + r^2 P(r) of degree 5, times 2^n; within 2 ulp of exp, and 0 below -87.3
// (where exp(y) < 1.2e-38 and 2^n would not be a normal float). Branch-free single IEEE
// operations (the build does not contract a * b + c), so the compiler's vectors give every
// element the bits of this scalar form, whatever the count.
inline float exp_nonpositive(float y) {
  const bool underflow = y < -87.3f;
  y = y >= -87.3f ? y : -87.3f;  // NaN too: no float-to-int conversion of NaN below
  const float n = std::nearbyint(y * 1.44269504088896341f);
  float r = std::fma(n, -0.693359375f, y);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r + 1.f);
  return underflow ? 0.f : p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

void swiglu(const float* gate, const float* up, float* out, int64_t count) {
  parallel_chunks(count, kMinChunk, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      // silu(g) = g / (1 + exp(-g)), from e = exp(-|g|) so that exp never overflows:
      // g / (1 + e) for g >= 0, g e / (1 + e) below. NaN stays NaN.
      const float g = gate[i];
      const float e = exp_nonpositive(g >= 0.f ? -g : g);
      const float num = g >= 0.f ? g : g * e;
      out[i] = num / (1.f + e) * up[i];
    }
  });
}

void add(float* x, const float* y, int64_t count) {
  parallel_chunks(count, kMinChunk, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] += y[i];
  });
}

}  // namespace sspan::cpu
