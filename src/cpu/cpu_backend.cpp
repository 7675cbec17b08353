// The CPU backend: fp32 activations, a KV cache in fp32, fp16 or bf16, weights used in
// place from the checkpoint mapping (fp32/fp16/bf16), ops from src/cpu/ops.h.
#ifdef __linux__
#include <sys/mman.h>
#endif

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

// A zeroed, 2 MiB-aligned buffer that Linux may back with huge pages: a listed span block
// of one KV head is about one 4 KiB page, so small pages would cost a TLB miss per block.
struct AlignedFree {
  void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t(kAlign)); }
  static constexpr size_t kAlign = size_t(2) << 20;
};
using CacheBuffer = std::unique_ptr<std::byte[], AlignedFree>;
CacheBuffer alloc_cache(size_t bytes) {
  CacheBuffer buf(static_cast<std::byte*>(::operator new[](bytes, std::align_val_t(AlignedFree::kAlign))));
#ifdef __linux__
  madvise(buf.get(), bytes, MADV_HUGEPAGE);  // a hint; fine to fail
#endif
  std::memset(buf.get(), 0, bytes);
  return buf;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int threads, DType kv_dtype) : kv_dtype_(kv_dtype), isa_(cpu::best_isa()) {
    if (threads > 0) cpu::set_num_threads(threads);  // else the process-wide setting
    attention_.isa = isa_;
  }

  std::string name() const override {
    return fmt::format("cpu ({} threads, {} matmul, {} attention, {} KV cache)", cpu::num_threads(),
                       cpu::matmul_kernels().isa, cpu::isa_name(isa_), dtype_name(kv_dtype_));
  }
  Device device() const override { return Device::CPU; }
  DType act_dtype() const override { return DType::F32; }
  DType kv_dtype() const override { return kv_dtype_; }

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
    const size_t bytes = size_t(s.layers) * s.slots * s.kv_heads * s.max_ctx * s.head_dim * dtype_size(kv_dtype_);
    k_cache_.reset();
    v_cache_.reset();
    cache_bytes_ = 0;
    try {
      k_cache_ = alloc_cache(bytes);
      v_cache_ = alloc_cache(bytes);
    } catch (const std::bad_alloc&) {
      k_cache_.reset();
      SSPAN_FAIL("the KV cache ({:.1f} GB for {} sequences x {} positions in {}) does not fit in memory; "
                 "lower --max-context or the batch size, or use --kv-dtype f16",
                 2.0 * double(bytes) / 1e9, s.slots, s.max_ctx, dtype_name(kv_dtype_));
    }
    cache_bytes_ = 2 * bytes;
  }
  size_t kv_cache_bytes() const override { return cache_bytes_; }

  void set_step(const StepBatch& step) override {
    validate_step(step, {kv_.slots, kv_.max_ctx, 0});
    step_ = step;
    logit_origins_.assign(step);
    if (step.span) {
      attended_.assign(*step.span);
    } else {  // every row Dense (validate_step)
      attended_.assign_dense(step.pos);
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
    const size_t elem = dtype_size(kv_dtype_);
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < Hkv; ++h) {
        const size_t dst = cache_offset(layer, step_.slot[size_t(i)], h, step_.pos[size_t(i)]) * elem;
        const int64_t src = (int64_t(i) * Hkv + h) * D;
        cpu::store_kv(k.ptr<float>() + src, k_cache_.get() + dst, kv_dtype_, D, isa_);
        cpu::store_kv(v.ptr<float>() + src, v_cache_.get() + dst, kv_dtype_, D, isa_);
      }
  }
  void attention(int layer, const Tensor& q, Tensor& out, int n) override {
    const size_t base = cache_offset(layer, 0, 0, 0) * dtype_size(kv_dtype_);
    const cpu::KvLayerView kv{k_cache_.get() + base, v_cache_.get() + base, kv_.slots, kv_.kv_heads,
                              kv_.max_ctx,           kv_.head_dim,          kv_dtype_};
    cpu::span_attention(q.ptr<float>(), kv, step_.slot.data(), attended_, out.ptr<float>(), n,
                        int(row_width(q) / kv_.head_dim), attention_, workspace_);
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
  // Element offset of (layer, slot, head, position) in the cache.
  size_t cache_offset(int layer, int slot, int h, int pos) const {
    return (((size_t(layer) * kv_.slots + size_t(slot)) * kv_.kv_heads + size_t(h)) * kv_.max_ctx + size_t(pos)) *
           kv_.head_dim;
  }

  KvCacheShape kv_;
  DType kv_dtype_;
  cpu::Isa isa_;
  CacheBuffer k_cache_, v_cache_;  // [L][S][Hkv][C][D] of kv_dtype_
  size_t cache_bytes_ = 0;
  StepBatch step_;
  cpu::AttendedRanges attended_;  // this step's attended positions, read by every layer
  cpu::AttentionConfig attention_;
  cpu::AttentionWorkspace workspace_;
  LogitRowOrigins logit_origins_;
};

}  // namespace

DType cpu_kv_dtype(std::string_view option, const Checkpoint& checkpoint) {
  if (option == "auto")
    return checkpoint.get("model.embed_tokens.weight").dtype == DType::F32 ? DType::F32 : DType::F16;
  DType t;
  SSPAN_CHECK(parse_dtype(option, &t), "--kv-dtype '{}' is not one of auto, f32, f16, bf16", option);
  return t;
}

std::unique_ptr<Backend> make_cpu_backend(int threads, DType kv_dtype) {
  return std::make_unique<CpuBackend>(threads, kv_dtype);
}

}  // namespace sspan
