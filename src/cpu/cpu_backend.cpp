// The CPU backend: fp32 activations, a KV cache in fp32, fp16 or bf16, weights in their
// checkpoint dtype (fp32/fp16/bf16), ops from src/cpu/ops.h. Matrices are packed at load
// into the layout the matmul kernels read fastest (cpu::pack_for_matmul), or used in place
// from the checkpoint mapping where the kernels read row-major weights.
#ifdef __linux__
#include <sys/mman.h>
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <vector>

#include "common/check.h"
#include "cpu/attention_kernels.h"
#include "cpu/matmul_kernels.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "model/backend.h"

namespace sspan {
namespace {

cpu::WeightView as_weight(const Tensor& t) {
  SSPAN_CHECK(t.rank == 2, "weight must be 2-D, got {}", t.shape_str());
  return {t.data, t.dtype, t.dim(0), t.dim(1), t.row_group};
}

int64_t row_width(const Tensor& t) { return t.numel() / t.dim(0); }

// The cache keeps positions in blocks of kCpuKvBlock holding every KV head (KvLayerView),
// so a listed 16-position cluster is one run of memory (per key, a span of scattered
// 16-position clusters then costs within ~10% of dense, against ~1.4x with per-head runs:
// `sspan-bench attention --pattern dense,cluster16`).
static_assert(cpu::attn::kTileCut == kCpuKvBlock, "attention tiles are cut at cache blocks");

// A zeroed, 2 MiB-aligned buffer that Linux may back with huge pages: a span's listed
// blocks are scattered over a sequence's pages, so small pages would cost TLB misses.
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
    // In place (the caller keeps the checkpoint mapping alive), or a packed copy of a matrix.
    Tensor t;
    t.data = const_cast<std::byte*>(src.data);
    t.dtype = src.dtype;
    t.rank = int(src.shape.size());
    SSPAN_CHECK(t.rank >= 1 && t.rank <= 5, "tensor '{}': unsupported rank {}", src.name, t.rank);
    for (int i = 0; i < t.rank; ++i) t.shape[size_t(i)] = src.shape[size_t(i)];
    if (t.rank == 2) {  // a matmul weight or the embedding table (cpu::embedding reads both layouts)
      cpu::MatmulWeight w = cpu::pack_for_matmul(as_weight(t));
      t.data = const_cast<void*>(w.view.data), t.row_group = w.view.group;
      if (w.storage) t.storage = std::move(w.storage);
    }
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
    ctx_ = (s.max_ctx + kCpuKvBlock - 1) / kCpuKvBlock * kCpuKvBlock;
    const size_t bytes = size_t(s.layers) * s.slots * s.kv_heads * size_t(ctx_) * s.head_dim * dtype_size(kv_dtype_);
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
    validate_step(step, {kv_.slots, kv_.max_ctx, 0, kv_.layers, kv_.kv_heads});
    step_ = step;
    rope_table_rows_ = -1;  // new positions: rope() recomputes its table
    logit_origins_.assign(step);
    if (step.span) {
      attended_.assign(*step.span);
    } else {  // every row Dense (validate_step)
      attended_.assign_dense(step.pos);
    }
    set_head_ranges(step);
    set_records(step);
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
  void matmuls(const Tensor& x, std::initializer_list<Projection> outputs, int n) override {
    SSPAN_CHECK(outputs.size() <= size_t(cpu::kMaxMatmulOutputs), "matmuls: {} outputs, at most {}", outputs.size(),
                cpu::kMaxMatmulOutputs);
    std::array<cpu::MatmulOutput, cpu::kMaxMatmulOutputs> outs;
    size_t i = 0;
    for (const Projection& p : outputs) outs[i++] = {as_weight(p.w), p.y.ptr<float>()};
    cpu::matmul(x.ptr<float>(), std::span(outs.data(), i), n);
  }
  void rope(Tensor& q, Tensor& k, const Tensor& inv_freq, int n) override {
    const int D = kv_.head_dim;
    // The angles depend only on the rows' positions: one table per step serves every layer.
    if (rope_table_rows_ != n || rope_table_freq_ != inv_freq.data) {
      rope_table_.resize(size_t(n) * size_t(D));
      cpu::rope_table(step_.pos.data(), inv_freq.ptr<float>(), n, D, rope_table_.data());
      rope_table_rows_ = n, rope_table_freq_ = inv_freq.data;
    }
    cpu::rope(q.ptr<float>(), rope_table_.data(), n, int(row_width(q) / D), D);
    cpu::rope(k.ptr<float>(), rope_table_.data(), n, int(row_width(k) / D), D);
  }
  void kv_append(int layer, const Tensor& k, const Tensor& v, int n) override {
    const int D = kv_.head_dim, Hkv = kv_.kv_heads;
    const size_t elem = dtype_size(kv_dtype_);
    const cpu::KvLayerView view = layer_view(layer);
    std::byte* k_layer = k_cache_.get() + layer_bytes(layer);
    std::byte* v_layer = v_cache_.get() + layer_bytes(layer);
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < Hkv; ++h) {
        const size_t dst = size_t(view.row(step_.slot[size_t(i)], h, step_.pos[size_t(i)])) * D * elem;
        const int64_t src = (int64_t(i) * Hkv + h) * D;
        cpu::store_kv(k.ptr<float>() + src, k_layer + dst, kv_dtype_, D, isa_);
        cpu::store_kv(v.ptr<float>() + src, v_layer + dst, kv_dtype_, D, isa_);
      }
  }
  void attention(int layer, const Tensor& q, Tensor& out, int n) override {
    const cpu::KvLayerView kv = layer_view(layer);
    const int Hq = int(row_width(q) / kv_.head_dim);
    const cpu::AttentionMass mass{mass_record_.data(), mass_.data() + size_t(layer) * mass_head_floats(),
                                  int64_t(kv_.layers) * int64_t(mass_head_floats()), mass_stride_};
    cpu::span_attention(q.ptr<float>(), kv, step_.slot.data(), per_head_ ? head_attended_[size_t(layer)] : attended_,
                        out.ptr<float>(), n, Hq, attention_, workspace_, step_.mass_rows.empty() ? nullptr : &mass);
    if (layer + 1 == kv_.layers) keep_queries(q.ptr<float>(), Hq);
  }
  bool records_attention() const override { return true; }
  void read_attention_mass(int i, std::span<float> dst) override {
    SSPAN_CHECK(i >= 0 && size_t(i) < step_.mass_rows.size(), "attention mass row {} outside the last step's {}", i,
                step_.mass_rows.size());
    const size_t keys = size_t(step_.pos[size_t(step_.mass_rows[size_t(i)])]) + 1;
    const size_t heads = size_t(kv_.layers) * size_t(kv_.kv_heads);
    SSPAN_CHECK(dst.size() == heads * keys, "attention mass: {} values for {} layers x {} KV heads x {} keys",
                dst.size(), kv_.layers, kv_.kv_heads, keys);
    const float* src = mass_.data() + size_t(i) * heads * size_t(mass_stride_);
    for (size_t h = 0; h < heads; ++h) std::memcpy(&dst[h * keys], src + h * size_t(mass_stride_), keys * 4);
  }
  void read_query(int i, std::span<float> dst) override {
    SSPAN_CHECK(i >= 0 && size_t(i) < step_.query_rows.size(), "query row {} outside the last step's {}", i,
                step_.query_rows.size());
    SSPAN_CHECK(dst.size() == size_t(kv_.head_dim), "query: {} values for a head dim of {}", dst.size(),
                kv_.head_dim);
    std::memcpy(dst.data(), queries_.data() + size_t(i) * size_t(kv_.head_dim), dst.size() * 4);
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
  // PerHead rows: per layer, one ranges row per (row, KV head).
  void set_head_ranges(const StepBatch& step) {
    per_head_ = false;
    for (const RowMode m : step.mode) per_head_ |= m == RowMode::PerHead;
    if (!per_head_) return;
    const int n = int(step.tokens.size()), L = kv_.layers, Hkv = kv_.kv_heads;
    head_attended_.resize(size_t(L));
    head_row_.resize(size_t(n) * size_t(Hkv));
    for (int l = 0; l < L; ++l) {
      int next = 0;  // PerHead rows so far
      for (int r = 0; r < n; ++r) {
        const bool own = step.mode[size_t(r)] == RowMode::PerHead;
        for (int h = 0; h < Hkv; ++h)
          head_row_[size_t(r) * size_t(Hkv) + size_t(h)] = own ? (next * L + l) * Hkv + h : -1;
        next += own;
      }
      head_attended_[size_t(l)].assign_per_head(*step.span, step.head_span, head_row_, Hkv);
    }
  }
  // The record index of each mass row, and room for [mass rows][L][Hkv][keys] floats.
  void set_records(const StepBatch& step) {
    mass_record_.assign(step.tokens.size(), -1);
    mass_stride_ = 0;
    for (size_t i = 0; i < step.mass_rows.size(); ++i) {
      const int32_t r = step.mass_rows[i];
      mass_record_[size_t(r)] = int32_t(i);
      mass_stride_ = std::max<int64_t>(mass_stride_, int64_t(step.pos[size_t(r)]) + 1);
    }
    mass_.resize(step.mass_rows.size() * size_t(kv_.layers) * mass_head_floats());
    queries_.assign(step.query_rows.size() * size_t(kv_.head_dim), 0.f);
  }
  size_t mass_head_floats() const { return size_t(kv_.kv_heads) * size_t(mass_stride_); }  // one row's layer
  // The query rows' q (after RoPE) averaged over the query heads.
  void keep_queries(const float* q, int q_heads) {
    const int D = kv_.head_dim;
    for (size_t i = 0; i < step_.query_rows.size(); ++i) {
      float* dst = queries_.data() + i * size_t(D);
      const float* row = q + int64_t(step_.query_rows[i]) * q_heads * D;
      for (int h = 0; h < q_heads; ++h)
        for (int d = 0; d < D; ++d) dst[d] += row[h * D + d] / float(q_heads);
    }
  }

  // One layer of the cache: [S][ctx_ / kCpuKvBlock][Hkv][kCpuKvBlock][D] of kv_dtype_.
  cpu::KvLayerView layer_view(int layer) const {
    const size_t base = layer_bytes(layer);
    return {k_cache_.get() + base, v_cache_.get() + base, kv_.slots, kv_.kv_heads, ctx_, kv_.head_dim, kv_dtype_,
            kCpuKvBlock};
  }
  size_t layer_bytes(int layer) const {  // where a layer starts in each cache buffer
    return size_t(layer) * kv_.slots * kv_.kv_heads * size_t(ctx_) * kv_.head_dim * dtype_size(kv_dtype_);
  }

  KvCacheShape kv_;
  DType kv_dtype_;
  cpu::Isa isa_;
  int ctx_ = 0;                    // positions per slot in the cache: max_ctx in whole blocks
  CacheBuffer k_cache_, v_cache_;  // [L] of layer_view(l)
  size_t cache_bytes_ = 0;
  StepBatch step_;
  std::vector<float> rope_table_;        // [n][2][D/2] cos, sin of this step's rows (cpu::rope_table)
  int rope_table_rows_ = -1;             // rows it holds; -1: not yet computed this step
  const void* rope_table_freq_ = nullptr;  // the inverse frequencies it was computed from
  cpu::AttendedRanges attended_;  // this step's attended positions, read by every layer
  bool per_head_ = false;          // the step has PerHead rows: attention reads head_attended_
  std::vector<cpu::AttendedRanges> head_attended_;  // [L] of [n * Hkv] rows
  std::vector<int32_t> head_row_;                   // [n * Hkv] scratch of set_head_ranges
  std::vector<int32_t> mass_record_;                // [n] mass record of each row, or -1
  std::vector<float> mass_;     // [mass rows][L][Hkv][mass_stride_] attention mass of the step
  int64_t mass_stride_ = 0;     // keys per (record, layer, KV head): the longest mass row
  std::vector<float> queries_;  // [query rows][D]
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
