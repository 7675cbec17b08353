#include "support/reference_llama.h"

#include <cmath>
#include <cstring>
#include <string>

#include "sspan/dtype.h"

namespace sspan::test {
namespace {

using Mat = std::vector<std::vector<double>>;  // [rows][cols]

Mat load(const Checkpoint& ckpt, const std::string& name) {
  const TensorInfo& t = ckpt.get(name);
  const int64_t rows = t.shape.size() == 1 ? 1 : t.shape[0];
  const int64_t cols = t.numel() / rows;
  Mat m(size_t(rows), std::vector<double>(size_t(cols), 0.0));  // two args: no vexing parse
  for (int64_t i = 0; i < rows * cols; ++i) {
    const std::byte* p = t.data + size_t(i) * dtype_size(t.dtype);
    double v;
    if (t.dtype == DType::F32) {
      float f;
      std::memcpy(&f, p, 4);
      v = f;
    } else {
      uint16_t h;
      std::memcpy(&h, p, 2);
      v = t.dtype == DType::F16 ? half_to_float(h) : bf16_to_float(h);
    }
    m[size_t(i / cols)][size_t(i % cols)] = v;
  }
  return m;
}

std::vector<double> matvec(const Mat& w, const std::vector<double>& x) {  // w [O][K] . x [K]
  std::vector<double> y(w.size(), 0.0);
  for (size_t o = 0; o < w.size(); ++o)
    for (size_t k = 0; k < x.size(); ++k) y[o] += w[o][k] * x[k];
  return y;
}

std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = w[i] * x[i] * inv;
  return y;
}

void rope(std::vector<double>& v, int heads, int D, int pos, const std::vector<float>& inv_freq) {
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < D / 2; ++i) {
      const double a = double(pos) * double(inv_freq[size_t(i)]);
      double& x0 = v[size_t(h * D + i)];
      double& x1 = v[size_t(h * D + i + D / 2)];
      const double r0 = x0 * std::cos(a) - x1 * std::sin(a);
      const double r1 = x1 * std::cos(a) + x0 * std::sin(a);
      x0 = r0, x1 = r1;
    }
}

}  // namespace

std::vector<std::vector<double>> reference_logits(const ModelConfig& c, const Checkpoint& ckpt,
                                                  const std::vector<int32_t>& ids,
                                                  const std::vector<std::vector<bool>>& mask) {
  const size_t T = ids.size();
  const int H = c.hidden_size, D = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const auto inv_freq = rope_inv_freq(c);
  const Mat embed = load(ckpt, "model.embed_tokens.weight");
  Mat x(T);
  for (size_t t = 0; t < T; ++t) x[t] = embed[size_t(ids[t])];
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const Mat wq = load(ckpt, p + "self_attn.q_proj.weight"), wk = load(ckpt, p + "self_attn.k_proj.weight");
    const Mat wv = load(ckpt, p + "self_attn.v_proj.weight"), wo = load(ckpt, p + "self_attn.o_proj.weight");
    const Mat n1 = load(ckpt, p + "input_layernorm.weight"), n2 = load(ckpt, p + "post_attention_layernorm.weight");
    const Mat wg = load(ckpt, p + "mlp.gate_proj.weight"), wu = load(ckpt, p + "mlp.up_proj.weight");
    const Mat wd = load(ckpt, p + "mlp.down_proj.weight");
    Mat q(T), k(T), v(T);
    for (size_t t = 0; t < T; ++t) {
      const auto xn = rmsnorm(x[t], n1[0], c.rms_norm_eps);
      q[t] = matvec(wq, xn), k[t] = matvec(wk, xn), v[t] = matvec(wv, xn);
      rope(q[t], Hq, D, int(t), inv_freq);
      rope(k[t], Hkv, D, int(t), inv_freq);
    }
    for (size_t t = 0; t < T; ++t) {
      std::vector<double> att(size_t(Hq * D), 0.0);
      for (int h = 0; h < Hq; ++h) {
        const int hk = h / (Hq / Hkv);
        std::vector<double> s(t + 1, -INFINITY);
        double mx = -INFINITY;
        for (size_t j = 0; j <= t; ++j) {
          if (!mask.empty() && !mask[t][j]) continue;
          double d = 0;
          for (int i = 0; i < D; ++i) d += q[t][size_t(h * D + i)] * k[j][size_t(hk * D + i)];
          s[j] = d / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        double den = 0;
        for (size_t j = 0; j <= t; ++j)
          if (s[j] > -INFINITY) den += std::exp(s[j] - mx);
        for (size_t j = 0; j <= t; ++j) {
          if (s[j] == -INFINITY) continue;
          const double w = std::exp(s[j] - mx) / den;
          for (int i = 0; i < D; ++i) att[size_t(h * D + i)] += w * v[j][size_t(hk * D + i)];
        }
      }
      const auto o = matvec(wo, att);
      for (int i = 0; i < H; ++i) x[t][size_t(i)] += o[size_t(i)];
    }
    for (size_t t = 0; t < T; ++t) {
      const auto xn = rmsnorm(x[t], n2[0], c.rms_norm_eps);
      auto g = matvec(wg, xn);
      const auto u = matvec(wu, xn);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      const auto dn = matvec(wd, g);
      for (int i = 0; i < H; ++i) x[t][size_t(i)] += dn[size_t(i)];
    }
  }
  const Mat fn = load(ckpt, "model.norm.weight");
  const Mat head = ckpt.find("lm_head.weight") ? load(ckpt, "lm_head.weight") : embed;
  Mat logits(T);
  for (size_t t = 0; t < T; ++t) logits[t] = matvec(head, rmsnorm(x[t], fn[0], c.rms_norm_eps));
  return logits;
}

}  // namespace sspan::test
