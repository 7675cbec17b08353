// The CPU backend: fp32 activations and KV cache, weights used in place from the
// checkpoint mapping (fp32/fp16/bf16), ops from src/cpu/ops.h.
#include <cstring>
#include <new>
#include <vector>

#include "common/check.h"
#include "cpu/matmul_kernels.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "model/backend.h"

namespace sspan {
namespace {

cpu::WeightView as_weight(const Tensor& t) {
  SSPAN_CHECK(t.rank == 2, "weight must be 2-D, got {}", t.shape_str());
  return {t.data, t.dtype, t.dim(0), t.dim(1)};
}

int64_t row_width(const Tensor& t) { return t.numel() / t.dim(0); }

class CpuBackend final : public Backend {
 public:
  // threads <= 0 keeps the process-wide setting (by default every CPU it may use).
  explicit CpuBackend(int threads) {
    if (threads > 0) cpu::set_num_threads(threads);
  }

  std::string name() const override {
    return fmt::format("cpu ({} threads, {} matmul)", cpu::num_threads(), cpu::matmul_kernels().isa);
  }
  Device device() const override { return Device::CPU; }
  DType act_dtype() const override { return DType::F32; }

  Tensor load_weight(const TensorInfo& src) override {
    // Used in place: the caller keeps the checkpoint mapping alive.
    Tensor t;
    t.data = const_cast<std::byte*>(src.data);
    t.dtype = src.dtype;
    t.rank = int(src.shape.size());
    SSPAN_CHECK(t.rank >= 1 && t.rank <= 5, "tensor '{}': unsupported rank {}", src.name, t.rank);
    for (int i = 0; i < t.rank; ++i) t.shape[size_t(i)] = src.shape[size_t(i)];
    return t;
  }

  Tensor load_table(std::span<const float> values) override {
    Tensor t = alloc({int64_t(values.size())}, DType::F32);
    std::memcpy(t.data, values.data(), values.size_bytes());
    return t;
  }

  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override {
    SSPAN_CHECK(dtype == DType::F32, "cpu backend allocates fp32 buffers only");
    Tensor t;
    t.dtype = dtype;
    t.rank = int(shape.size());
    int i = 0;
    for (auto d : shape) t.shape[size_t(i++)] = d;
    auto buf = std::make_shared<std::vector<float>>(size_t(t.numel()));
    t.data = buf->data();
    t.storage = buf;
    return t;
  }

  void alloc_kv_cache(const KvCacheShape& s) override {
    kv_ = s;
    const size_t per_layer = size_t(s.slots) * s.kv_heads * s.max_ctx * s.head_dim;
    try {
      k_cache_.assign(per_layer * size_t(s.layers), 0.f);
      v_cache_.assign(per_layer * size_t(s.layers), 0.f);
    } catch (const std::bad_alloc&) {
      SSPAN_FAIL("the KV cache ({:.1f} GB for {} sequences x {} positions) does not fit in memory; "
                 "lower --max-context or the batch size",
                 2.0 * double(per_layer * size_t(s.layers)) * sizeof(float) / 1e9, s.slots, s.max_ctx);
    }
  }
  size_t kv_cache_bytes() const override { return (k_cache_.size() + v_cache_.size()) * sizeof(float); }

  void set_step(const StepBatch& step) override {
    validate_step(step, {kv_.slots, kv_.max_ctx, 0});
    step_ = step;
    logit_origins_.assign(step);
    if (step.span) {
      span_ = step.span;
    } else {  // every row Dense (validate_step): attend through the dense encoding
      dense_.reset(64);
      for (int32_t p : step.pos) dense_.add_dense_row(p);
      span_ = &dense_;
    }
  }

  void embedding(const Tensor& table, Tensor& out, int n) override {
    cpu::embedding(as_weight(table), step_.tokens.data(), out.ptr<float>(), n);
  }
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out, int n) override {
    SSPAN_CHECK(w.dtype == DType::F32, "rms_norm weight must be fp32 (loaded with load_table)");
    cpu::rms_norm(x.ptr<float>(), w.ptr<float>(), eps, out.ptr<float>(), n, int(row_width(x)));
  }
  void matmul(const Tensor& x, const Tensor& w, Tensor& y, int n) override {
    cpu::matmul(x.ptr<float>(), as_weight(w), y.ptr<float>(), n);
  }
  void rope(Tensor& q, Tensor& k, const Tensor& inv_freq, int n) override {
    const int D = kv_.head_dim;
    cpu::rope(q.ptr<float>(), step_.pos.data(), inv_freq.ptr<float>(), n, int(row_width(q) / D), D);
    cpu::rope(k.ptr<float>(), step_.pos.data(), inv_freq.ptr<float>(), n, int(row_width(k) / D), D);
  }
  void kv_append(int layer, const Tensor& k, const Tensor& v, int n) override {
    const int D = kv_.head_dim, Hkv = kv_.kv_heads;
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < Hkv; ++h) {
        const size_t dst = cache_offset(layer, step_.slot[size_t(i)], h, step_.pos[size_t(i)]);
        std::memcpy(&k_cache_[dst], k.ptr<float>() + (int64_t(i) * Hkv + h) * D, size_t(D) * 4);
        std::memcpy(&v_cache_[dst], v.ptr<float>() + (int64_t(i) * Hkv + h) * D, size_t(D) * 4);
      }
  }
  void attention(int layer, const Tensor& q, Tensor& out, int n) override {
    const size_t base = cache_offset(layer, 0, 0, 0);
    cpu::KvLayerView kv{&k_cache_[base], &v_cache_[base], kv_.slots, kv_.kv_heads, kv_.max_ctx, kv_.head_dim};
    cpu::span_attention(q.ptr<float>(), kv, step_.slot.data(), *span_, out.ptr<float>(), n,
                        int(row_width(q) / kv_.head_dim));
  }
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out, int n) override {
    cpu::swiglu(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), int64_t(n) * row_width(gate));
  }
  void add(Tensor& x, const Tensor& y, int n) override {
    cpu::add(x.ptr<float>(), y.ptr<float>(), int64_t(n) * row_width(x));
  }
  void gather_rows(const Tensor& x, Tensor& out, int n_out) override {
    const int64_t H = row_width(x);
    SSPAN_CHECK(size_t(n_out) == step_.logit_rows.size(), "gather_rows: {} rows requested, step lists {}", n_out,
                step_.logit_rows.size());
    for (int i = 0; i < n_out; ++i)
      std::memcpy(out.ptr<float>() + i * H, x.ptr<float>() + int64_t(step_.logit_rows[size_t(i)]) * H,
                  size_t(H) * 4);
  }
  void read_logits(const Tensor& logits, std::span<float> dst, int m) override {
    const size_t count = size_t(m) * size_t(row_width(logits));
    SSPAN_CHECK(dst.size() >= count, "read_logits: destination holds {} floats, need {}", dst.size(), count);
    std::memcpy(dst.data(), logits.data, count * 4);
    check_logits_finite(dst.first(count), row_width(logits), m, logit_origins_);
  }

 private:
  size_t cache_offset(int layer, int slot, int h, int pos) const {
    return (((size_t(layer) * kv_.slots + size_t(slot)) * kv_.kv_heads + size_t(h)) * kv_.max_ctx + size_t(pos)) *
           kv_.head_dim;
  }

  KvCacheShape kv_;
  std::vector<float> k_cache_, v_cache_;  // [L][S][Hkv][C][D]
  StepBatch step_;
  const SpanBatch* span_ = nullptr;
  SpanBatch dense_;
  LogitRowOrigins logit_origins_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace sspan
