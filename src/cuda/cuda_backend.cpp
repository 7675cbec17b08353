// CudaBackend: the Backend ops on one CUDA device. Host-side checks and bookkeeping here;
// the arithmetic is in kernels/ and cuBLAS.
#include "cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "common/check.h"
#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"
#include "cuda/step_buffers.h"
#include "cuda/weight_upload.h"
#include "attention_record.h"
#include "elementwise.h"
#include "prefill_attention.h"
#include "sampling.h"
#include "sparse_decode_attention.h"

namespace sspan {
namespace {

using cuda::DeviceBuffer;
using cuda::PinnedBuffer;

constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

// The process-wide routing counters behind cuda::attention_routing().
struct RoutingCounters {
  std::atomic<int64_t> steps{0}, prefill_steps{0}, decode_steps{0}, mixed_steps{0}, prefill_rows{0}, decode_rows{0};
};
RoutingCounters& routing_counters() {
  static RoutingCounters c;
  return c;
}

void count_routing(const cuda::RowRoutes& r) {
  RoutingCounters& c = routing_counters();
  ++c.steps;
  c.prefill_steps += r.prefill_tiles > 0;
  c.decode_steps += r.decode_rows > 0;
  c.mixed_steps += r.prefill_tiles > 0 && r.decode_rows > 0;
  c.prefill_rows += r.prefill_rows;
  c.decode_rows += r.decode_rows;
}

cuda::DeviceLimits device_limits(int device) {
  cuda::DeviceLimits d;
  auto attr = [device](cudaDeviceAttr a) {
    int v = 0;
    SSPAN_CUDA_CHECK(cudaDeviceGetAttribute(&v, a, device));
    return v;
  };
  d.sm_count = attr(cudaDevAttrMultiProcessorCount);
  d.max_smem_per_block_optin = attr(cudaDevAttrMaxSharedMemoryPerBlockOptin);
  d.max_smem_per_sm = attr(cudaDevAttrMaxSharedMemoryPerMultiprocessor);
  d.reserved_smem_per_block = attr(cudaDevAttrReservedSharedMemoryPerBlock);
  d.max_blocks_per_sm = attr(cudaDevAttrMaxBlocksPerMultiprocessor);
  return d;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
  }
  SSPAN_FAIL("unknown dtype");
}

// Elements per leading-dimension row of a tensor ([n, a, b] -> a * b).
int64_t row_elems(const Tensor& t) { return t.rank <= 1 ? t.numel() : t.numel() / t.dim(0); }

Tensor device_tensor(std::shared_ptr<DeviceBuffer> buf, const std::vector<int64_t>& shape, DType dtype) {
  SSPAN_CHECK(shape.size() <= 5, "tensor rank {} exceeds 5", shape.size());
  Tensor t;
  t.data = buf->get();
  t.storage = std::move(buf);
  t.dtype = dtype;
  t.device = Device::CUDA;
  t.rank = int(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.shape[i] = shape[i];
  return t;
}

struct GraphExecDeleter {
  void operator()(cudaGraphExec_t g) const { cudaGraphExecDestroy(g); }
};
using GraphExecPtr = std::unique_ptr<std::remove_pointer_t<cudaGraphExec_t>, GraphExecDeleter>;

class CudaBackend final : public Backend {
 public:
  CudaBackend(DType dtype, int device_index, const CudaBackendOptions& options)
      : dtype_(dtype), device_index_(device_index), options_(options) {
    SSPAN_CHECK(dtype == DType::F16 || dtype == DType::BF16, "CUDA backend: dtype {} (F16 or BF16)", dtype_name(dtype));
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) cudaGetLastError();
    SSPAN_CHECK(err == cudaSuccess && device_index >= 0 && device_index < count,
                "CUDA backend: device {} is not available ({} devices{}{})", device_index, count,
                err == cudaSuccess ? "" : ": ", err == cudaSuccess ? "" : cudaGetErrorString(err));
    SSPAN_CUDA_CHECK(cudaSetDevice(device_index));
    cudaDeviceProp prop{};
    SSPAN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_index));
    SSPAN_CHECK(prop.major >= 8, "CUDA backend: device {} ({}) has compute capability {}.{}; 8.0 or newer is needed",
                device_index, prop.name, prop.major, prop.minor);
    device_name_ = prop.name;
    limits_ = device_limits(device_index);
    SSPAN_CHECK(options_.decode_warps == 0 || options_.decode_warps == 2 || options_.decode_warps == 4,
                "CUDA backend: decode warps {} (0 for the device's choice, 2 or 4)", options_.decode_warps);
    SSPAN_CHECK(options_.min_prefill_run >= 1, "CUDA backend: minimum prefill run {} must be >= 1",
                options_.min_prefill_run);
    SSPAN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    SSPAN_CUBLAS_CHECK(cublasCreate(&cublas_));
    SSPAN_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // A fixed workspace keeps cuBLAS from allocating inside a captured graph.
    cublas_workspace_ = DeviceBuffer(kCublasWorkspaceBytes, "cuBLAS workspace");
    SSPAN_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_.get(), cublas_workspace_.bytes()));
  }

  ~CudaBackend() override {
    cudaSetDevice(device_index_);  // the buffers below are freed on it
    if (stream_) cudaStreamSynchronize(stream_);
    graphs_.clear();
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  // Every entry point makes the backend's device current: steps may run on another thread
  // than the one that built the backend (Scheduler::start), and a new thread starts on
  // device 0. The per-step ops run between set_step and the reads, on the stepping thread.
  void use_device() const { SSPAN_CUDA_CHECK(cudaSetDevice(device_index_)); }

  std::string name() const override { return "cuda:" + std::to_string(device_index_) + " (" + device_name_ + ")"; }
  Device device() const override { return Device::CUDA; }
  DType act_dtype() const override { return dtype_; }

  // ---- memory ----
  Tensor load_weight(const TensorInfo& src) override {
    use_device();
    auto buf = std::make_shared<DeviceBuffer>(size_t(src.numel()) * dtype_size(dtype_),
                                              fmt::format("weight {} {}", src.name, fmt::join(src.shape, "x")));
    if (!uploader_) uploader_ = std::make_unique<cuda::WeightUploader>();
    uploader_->upload(src, dtype_, buf->get(), stream_);
    return device_tensor(std::move(buf), src.shape, dtype_);
  }

  Tensor load_table(std::span<const float> values) override {
    use_device();
    auto buf = std::make_shared<DeviceBuffer>(values.size_bytes(), "fp32 table");
    // On the backend's stream; the wait keeps the (pageable) source alive until it is copied.
    SSPAN_CUDA_CHECK(cudaMemcpyAsync(buf->get(), values.data(), values.size_bytes(), cudaMemcpyHostToDevice, stream_));
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return device_tensor(std::move(buf), {int64_t(values.size())}, DType::F32);
  }

  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override {
    use_device();
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    auto buf = std::make_shared<DeviceBuffer>(size_t(n) * dtype_size(dtype),
                                              fmt::format("activation [{}] {}", fmt::join(shape, ", "), dtype_name(dtype)));
    return device_tensor(std::move(buf), std::vector<int64_t>(shape), dtype);
  }

  void alloc_kv_cache(const KvCacheShape& s) override {
    use_device();
    SSPAN_CHECK(s.layers > 0 && s.slots > 0 && s.kv_heads > 0 && s.max_ctx > 0,
                "KV cache shape L={} S={} Hkv={} C={} D={}: every size must be positive", s.layers, s.slots,
                s.kv_heads, s.max_ctx, s.head_dim);
    SSPAN_CHECK(cuda::head_dim_supported(s.head_dim),
                "the CUDA backend does not support head_dim {} (the model's hidden size / attention heads); it runs "
                "head_dim {}",
                s.head_dim, cuda::supported_head_dims());
    const int q_heads = s.q_heads > 0 ? s.q_heads : s.kv_heads;
    SSPAN_CHECK(cuda::decode_group_supported(q_heads, s.kv_heads),
                "the CUDA backend serves 1 to {} query heads per KV head; this model has {} query heads on {} KV "
                "heads",
                cuda::kDecodeMaxGroup, q_heads, s.kv_heads);
    const int elem = int(dtype_size(dtype_));
    // Launch configuration for this device (throws naming the limit when nothing fits).
    decode_warps_ =
        options_.decode_warps ? options_.decode_warps : cuda::choose_decode_warps(limits_, s.head_dim, elem);
    SSPAN_CHECK(cuda::decode_smem_layout(s.head_dim, elem, decode_warps_).bytes <=
                    size_t(limits_.max_smem_per_block_optin),
                "CUDA backend: {} decode warps at head_dim {} need more shared memory than device {} allows ({} B)",
                decode_warps_, s.head_dim, device_name_, limits_.max_smem_per_block_optin);
    prefill_keys_ = cuda::choose_prefill_keys(limits_, s.head_dim, elem);
    decode_ctas_per_sm_ = kernels::sparse_decode_ctas_per_sm(dtype_, s.head_dim, decode_warps_);
    SSPAN_CHECK(decode_ctas_per_sm_ >= 1, "CUDA backend: the decode kernel does not fit an SM of device {}",
                device_name_);

    const size_t each = size_t(s.layers) * s.slots * s.kv_heads * s.max_ctx * s.head_dim * dtype_size(dtype_);
    size_t free_b = 0, total_b = 0;
    SSPAN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    SSPAN_CHECK(2 * each <= free_b, "KV cache does not fit: {}",
                cuda::device_memory_report(2 * each, fmt::format("keys and values [{}][{}][{}][{}][{}]", s.layers,
                                                                  s.slots, s.kv_heads, s.max_ctx, s.head_dim)));
    k_cache_ = DeviceBuffer(each, "KV cache keys");
    v_cache_ = DeviceBuffer(each, "KV cache values");
    // No kernel reads a position before it is appended; zeros (not stale bits) are there
    // anyway, ordered with everything else on the backend's stream.
    SSPAN_CUDA_CHECK(cudaMemsetAsync(k_cache_.get(), 0, each, stream_));
    SSPAN_CUDA_CHECK(cudaMemsetAsync(v_cache_.get(), 0, each, stream_));
    kv_ = s;
    // Split states: choose_decode_splits keeps rows * Hkv * splits within two waves of
    // resident CTAs (max_splits below); times the largest group.
    const int64_t states = int64_t(2) * limits_.sm_count * decode_ctas_per_sm_ * kernels::kDecodeMaxGroup;
    part_o_ = DeviceBuffer(size_t(states) * s.head_dim * sizeof(float), "decode split outputs");
    part_m_ = DeviceBuffer(size_t(states) * sizeof(float), "decode split maxima");
    part_d_ = DeviceBuffer(size_t(states) * sizeof(float), "decode split sums");
    part_states_ = states;
  }

  size_t kv_cache_bytes() const override { return k_cache_.bytes() + v_cache_.bytes(); }

  void reserve_steps(int max_rows, int max_blocks) override {
    use_device();
    if (steps_.reserve(max_rows, max_blocks)) graphs_.clear();
  }

  // ---- per step ----
  void set_step(const StepBatch& step) override {
    use_device();
    SSPAN_CHECK(!capturing_, "set_step inside a captured forward step");
    if (steps_.upload(step, {kv_.slots, kv_.max_ctx, vocab_, kv_.layers, kv_.kv_heads}, options_.min_prefill_run,
                      stream_))
      graphs_.clear();
    logit_origins_.assign(step);
    const cuda::StepInfo& info = steps_.info();
    if (reserve_records(info.mass_rows, info.query_rows)) graphs_.clear();
    mass_pos_.clear();
    for (const int32_t r : step.mass_rows) mass_pos_.push_back(step.pos[size_t(r)]);
    // Splits of the decode kernel for this step (part of a captured graph's shape).
    decode_splits_ = cuda::plan_decode_splits(info.routes.decode_rows, kv_.kv_heads, part_states_,
                                              limits_.sm_count * decode_ctas_per_sm_, info.max_decode_items);
    count_routing(info.routes);
  }

  void forward_step(const StepBatch& step, const std::function<void()>& body) override {
    set_step(step);
    const cuda::StepInfo& info = steps_.info();
    const bool graphable = options_.use_graphs && info.rows > 0 && info.distinct_slots &&
                           info.rows <= options_.max_graph_rows;
    if (!graphable) return body();
    const GraphKey key{info.rows,          info.logit_rows,          info.block_size,
                       info.words_per_block, info.routes.decode_rows, info.routes.prefill_tiles,
                       decode_splits_,       info.mass_rows,            info.query_rows};
    if (uncapturable_.count(key)) return body();
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      cudaGraph_t graph = nullptr;
      capture_broken_ = false;
      // Relaxed: the first launch of a kernel raises its shared-memory limit
      // (cudaFuncSetAttribute), which may happen inside the first capture.
      SSPAN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
      capturing_ = true;
      try {
        body();
      } catch (...) {
        capturing_ = false;
        cudaStreamEndCapture(stream_, &graph);
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        throw;
      }
      capturing_ = false;
      SSPAN_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
      if (capture_broken_) {  // body needs the host mid-step (e.g. read_logits): run eagerly
        cudaGraphDestroy(graph);
        uncapturable_.insert(key);
        return body();
      }
      cudaGraphExec_t exec = nullptr;
      const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      SSPAN_CUDA_CHECK(err);
      it = graphs_.emplace(key, GraphExecPtr(exec)).first;
    }
    SSPAN_CUDA_CHECK(cudaGraphLaunch(it->second.get(), stream_));
  }

  // ---- ops ----
  void embedding(const Tensor& table, Tensor& out, int n) override {
    check_rows(n, "embedding");
    const int hidden = int(row_elems(table));
    expect(table, dtype_, "embedding table");
    expect(out, dtype_, "embedding output");
    SSPAN_CHECK(row_elems(out) == hidden && out.dim(0) >= n, "embedding: output {} for {} rows of {}", out.shape_str(),
                n, hidden);
    vocab_ = table.dim(0);  // later steps are checked in set_step, before any graph replay
    const int32_t* tokens = steps_.host_tokens();
    for (int i = 0; i < n; ++i)
      SSPAN_CHECK(tokens[i] >= 0 && tokens[i] < vocab_, "embedding: token id {} outside the vocabulary [0, {})",
                  tokens[i], vocab_);
    kernels::launch_embedding(dtype_, table.data, steps_.device().tokens, out.data, n, hidden, stream_);
  }

  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out, int n) override {
    const int hidden = int(w.numel());
    expect(x, dtype_, "rms_norm input");
    expect(w, w.dtype == DType::F32 ? DType::F32 : dtype_, "rms_norm weight");  // fp32 table or a weight
    expect(out, dtype_, "rms_norm output");
    SSPAN_CHECK(row_elems(x) == hidden && row_elems(out) == hidden && x.dim(0) >= n && out.dim(0) >= n,
                "rms_norm: input {} / output {} for weight [{}] and {} rows", x.shape_str(), out.shape_str(), hidden, n);
    kernels::launch_rms_norm(dtype_, x.data, w.dtype, w.data, eps, out.data, n, hidden, stream_);
  }

  void matmul(const Tensor& x, const Tensor& w, Tensor& y, int n) override {
    SSPAN_CHECK(w.rank == 2, "matmul: weight {} is not a matrix", w.shape_str());
    const int out_dim = int(w.dim(0)), k_dim = int(w.dim(1));
    expect(x, dtype_, "matmul input");
    expect(w, dtype_, "matmul weight");
    SSPAN_CHECK(y.dtype == dtype_ || y.dtype == DType::F32, "matmul: output dtype {}", dtype_name(y.dtype));
    SSPAN_CHECK(row_elems(x) == k_dim && row_elems(y) == out_dim && x.dim(0) >= n && y.dim(0) >= n,
                "matmul: x {} . W {}^T -> y {} for {} rows", x.shape_str(), w.shape_str(), y.shape_str(), n);
    if (n == 0) return;
    const float alpha = 1.f, beta = 0.f;
    // Row-major y[n, O] is column-major y^T[O, n] = W[O, K] . x^T[K, n].
    SSPAN_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out_dim, n, k_dim, &alpha, w.data,
                                    cuda_type(w.dtype), k_dim, x.data, cuda_type(x.dtype), k_dim, &beta, y.data,
                                    cuda_type(y.dtype), out_dim, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  void rope(Tensor& q, Tensor& k, const Tensor& inv_freq, int n) override {
    const int head_dim = int(2 * inv_freq.numel());
    SSPAN_CHECK(inv_freq.dtype == DType::F32 && head_dim > 0, "rope: inv_freq must be an fp32 table");
    expect(q, dtype_, "rope q");
    expect(k, dtype_, "rope k");
    SSPAN_CHECK(row_elems(q) % head_dim == 0 && row_elems(k) % head_dim == 0 && q.dim(0) >= n && k.dim(0) >= n,
                "rope: q {} / k {} do not split into heads of {}", q.shape_str(), k.shape_str(), head_dim);
    kernels::launch_rope(dtype_, q.data, k.data, inv_freq.ptr<float>(), steps_.device().pos, n,
                         int(row_elems(q) / head_dim), int(row_elems(k) / head_dim), head_dim, stream_);
  }

  void kv_append(int layer, const Tensor& k, const Tensor& v, int n) override {
    check_layer(layer, "kv_append");
    expect(k, dtype_, "kv_append k");
    expect(v, dtype_, "kv_append v");
    const int64_t row = int64_t(kv_.kv_heads) * kv_.head_dim;
    SSPAN_CHECK(row_elems(k) == row && row_elems(v) == row && k.dim(0) >= n && v.dim(0) >= n,
                "kv_append: k {} / v {} for {} KV heads of {}", k.shape_str(), v.shape_str(), kv_.kv_heads,
                kv_.head_dim);
    const int64_t head_stride = int64_t(kv_.max_ctx) * kv_.head_dim;
    const int64_t slot_stride = head_stride * kv_.kv_heads;
    kernels::launch_kv_append(dtype_, k.data, v.data, cache_layer(k_cache_, layer), cache_layer(v_cache_, layer),
                              steps_.device().slot, steps_.device().pos, n, kv_.kv_heads, kv_.head_dim, slot_stride,
                              head_stride, stream_);
  }

  void attention(int layer, const Tensor& q, Tensor& out, int n) override {
    check_layer(layer, "attention");
    check_rows(n, "attention");
    expect(q, dtype_, "attention q");
    expect(out, dtype_, "attention output");
    const int d = kv_.head_dim;
    SSPAN_CHECK(row_elems(q) % d == 0 && row_elems(out) == row_elems(q) && q.dim(0) >= n && out.dim(0) >= n,
                "attention: q {} / output {} for head_dim {}", q.shape_str(), out.shape_str(), d);
    const int q_heads = int(row_elems(q) / d);
    const cuda::StepInfo& info = steps_.info();
    const cuda::StepDevice& dev = steps_.device();
    const int64_t head_stride = int64_t(kv_.max_ctx) * d;
    const int64_t slot_stride = head_stride * kv_.kv_heads;
    if (n == 0) return;
    SSPAN_CHECK(info.mass_rows == 0 || q_heads <= kv_.kv_heads * kernels::kDecodeMaxGroup,
                "attention: {} query heads on {} KV heads", q_heads, kv_.kv_heads);
    if (layer + 1 == kv_.layers && info.query_rows > 0)  // the query record: last layer, after RoPE
      kernels::launch_query_mean(dtype_, q.data, row_elems(q), dev.query_rows, info.query_rows, q_heads, d,
                                 queries_.as<float>(), stream_);
    if (info.routes.prefill_tiles > 0) {  // dense prompt runs: tensor-core prefill
      kernels::PrefillParams p;
      p.q = q.data;
      p.k_cache = cache_layer(k_cache_, layer);
      p.v_cache = cache_layer(v_cache_, layer);
      p.out = out.data;
      p.q_row_stride = p.out_row_stride = row_elems(q);
      p.cache_slot_stride = slot_stride;
      p.cache_head_stride = head_stride;
      p.slot = dev.slot;
      p.pos = dev.pos;
      p.tiles = dev.prefill_tiles;
      p.num_tiles = info.routes.prefill_tiles;
      p.max_tile_rows = info.routes.max_tile_rows;
      p.q_heads = q_heads;
      p.kv_heads = kv_.kv_heads;
      p.head_dim = d;
      p.scale = 1.f / std::sqrt(float(d));
      p.keys = prefill_keys_;
      kernels::launch_prefill_attention(p, dtype_, stream_);
    }
    if (info.routes.decode_rows == 0) return;
    kernels::SparseDecodeParams p;  // sparse rows and dense decode rows
    p.q = q.data;
    p.k_cache = cache_layer(k_cache_, layer);
    p.v_cache = cache_layer(v_cache_, layer);
    p.q_row_stride = p.out_row_stride = row_elems(q);
    p.cache_slot_stride = slot_stride;
    p.cache_head_stride = head_stride;
    p.max_ctx = kv_.max_ctx;
    p.row_ids = dev.decode_rows;
    p.slot = dev.slot;
    p.indptr = dev.indptr;
    p.block_ids = dev.block_ids;
    p.masks = dev.masks;
    p.block_id_stride = p.mask_stride = dev.record_stride;
    p.tail_start = dev.tail_start;
    p.pos = dev.pos;
    p.head_first = dev.head_first;
    p.layer = layer;
    if (info.mass_rows > 0) {
      p.mass_record = dev.mass_record;
      p.raw_scores = raw_scores_.as<float>();
      p.raw_stride = kv_.max_ctx;
      p.score_lse = score_lse_.as<float>();
    }
    p.out = out.data;
    p.part_o = part_o_.as<float>();
    p.part_m = part_m_.as<float>();
    p.part_d = part_d_.as<float>();
    p.rows = info.routes.decode_rows;
    p.q_heads = q_heads;
    p.kv_heads = kv_.kv_heads;
    p.head_dim = d;
    p.block_size = info.block_size;
    p.scale = 1.f / std::sqrt(float(d));
    p.splits = decode_splits_;
    SSPAN_CHECK(cuda::decode_split_states_fit(p.rows, q_heads, p.splits, part_states_),
                "attention: {} split states for {} held", int64_t(p.rows) * q_heads * p.splits, part_states_);
    p.warps = decode_warps_;
    using Choice = CudaBackendOptions::DecodeMathChoice;
    p.math = options_.decode_math == Choice::Scalar       ? cuda::DecodeMath::Scalar
             : options_.decode_math == Choice::TensorCore ? cuda::DecodeMath::TensorCore
                                                          : cuda::choose_decode_math(q_heads / kv_.kv_heads);
    kernels::launch_sparse_decode_attention(p, dtype_, stream_);
    if (info.mass_rows == 0) return;
    kernels::AttentionMassParams m;  // the mass rows' scores, normalised and summed per KV head
    m.mass_rows = dev.mass_rows;
    m.pos = dev.pos;
    m.raw_scores = p.raw_scores;
    m.raw_stride = p.raw_stride;
    m.score_lse = p.score_lse;
    m.mass = mass_.as<float>();
    m.mass_stride = kv_.max_ctx;
    m.records = info.mass_rows;
    m.layers = kv_.layers;
    m.layer = layer;
    m.q_heads = q_heads;
    m.kv_heads = kv_.kv_heads;
    m.max_keys = kv_.max_ctx;
    kernels::launch_attention_mass(m, stream_);
  }

  bool records_attention() const override { return true; }

  void read_attention_mass(int i, std::span<float> dst) override {
    use_device();
    SSPAN_CHECK(!capturing_, "read_attention_mass inside a captured forward step");
    SSPAN_CHECK(i >= 0 && size_t(i) < mass_pos_.size(), "attention mass row {} outside the last step's {}", i,
                mass_pos_.size());
    const size_t keys = size_t(mass_pos_[size_t(i)]) + 1, heads = size_t(kv_.layers) * size_t(kv_.kv_heads);
    SSPAN_CHECK(dst.size() == heads * keys, "attention mass: {} values for {} layers x {} KV heads x {} keys",
                dst.size(), kv_.layers, kv_.kv_heads, keys);
    const size_t pitch = size_t(kv_.max_ctx) * sizeof(float);
    const float* src = mass_.as<float>() + size_t(i) * heads * size_t(kv_.max_ctx);
    SSPAN_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), keys * sizeof(float), src, pitch, keys * sizeof(float), heads,
                                       cudaMemcpyDeviceToHost, stream_));
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  bool read_attention_top_k(int i, int32_t k, std::span<int32_t> dst) override {
    use_device();
    SSPAN_CHECK(!capturing_, "read_attention_top_k inside a captured forward step");
    SSPAN_CHECK(i >= 0 && size_t(i) < mass_pos_.size(), "attention mass row {} outside the last step's {}", i,
                mass_pos_.size());
    SSPAN_CHECK(k >= 1, "attention top-k: k = {} (at least 1)", k);
    const int keys = mass_pos_[size_t(i)] + 1, kept = std::min(k, keys);
    const size_t count = size_t(kv_.layers) * size_t(kv_.kv_heads) * size_t(kept);
    SSPAN_CHECK(dst.size() == count, "attention top-k: {} keys for {} layers x {} KV heads x {}", dst.size(),
                kv_.layers, kv_.kv_heads, kept);
    if (top_keys_.bytes() < count * sizeof(int32_t)) top_keys_ = DeviceBuffer(count * sizeof(int32_t), "top keys");
    kernels::AttentionTopKParams p;
    p.mass = mass_.as<float>();
    p.mass_stride = kv_.max_ctx;
    p.record = i;
    p.layers = kv_.layers;
    p.kv_heads = kv_.kv_heads;
    p.keys = keys;
    p.k = kept;
    p.out = top_keys_.as<int32_t>();
    kernels::launch_attention_top_k(p, stream_);
    SSPAN_CUDA_CHECK(cudaMemcpyAsync(dst.data(), top_keys_.get(), count * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                     stream_));
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return true;
  }

  void read_query(int i, std::span<float> dst) override {
    use_device();
    SSPAN_CHECK(!capturing_, "read_query inside a captured forward step");
    SSPAN_CHECK(i >= 0 && i < steps_.info().query_rows, "query row {} outside the last step's {}", i,
                steps_.info().query_rows);
    SSPAN_CHECK(dst.size() == size_t(kv_.head_dim), "query: {} values for a head dim of {}", dst.size(),
                kv_.head_dim);
    SSPAN_CUDA_CHECK(cudaMemcpyAsync(dst.data(), queries_.as<float>() + size_t(i) * size_t(kv_.head_dim),
                                     dst.size_bytes(), cudaMemcpyDeviceToHost, stream_));
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out, int n) override {
    expect(gate, dtype_, "swiglu gate");
    expect(up, dtype_, "swiglu up");
    expect(out, dtype_, "swiglu output");
    const int64_t row = row_elems(gate);
    SSPAN_CHECK(row_elems(up) == row && row_elems(out) == row && gate.dim(0) >= n && up.dim(0) >= n && out.dim(0) >= n,
                "swiglu: gate {} / up {} / output {}", gate.shape_str(), up.shape_str(), out.shape_str());
    kernels::launch_swiglu(dtype_, gate.data, up.data, out.data, row * n, stream_);
  }

  void add(Tensor& x, const Tensor& y, int n) override {
    expect(x, dtype_, "add x");
    expect(y, dtype_, "add y");
    SSPAN_CHECK(row_elems(x) == row_elems(y) && x.dim(0) >= n && y.dim(0) >= n, "add: x {} / y {}", x.shape_str(),
                y.shape_str());
    kernels::launch_add(dtype_, x.data, y.data, row_elems(x) * n, stream_);
  }

  void gather_rows(const Tensor& x, Tensor& out, int n_out) override {
    SSPAN_CHECK(n_out == steps_.info().logit_rows, "gather_rows: {} rows asked, the step wants logits of {}", n_out,
                steps_.info().logit_rows);
    SSPAN_CHECK(x.dtype == out.dtype && row_elems(x) == row_elems(out) && out.dim(0) >= n_out,
                "gather_rows: x {} {} / output {} {}", x.shape_str(), dtype_name(x.dtype), out.shape_str(),
                dtype_name(out.dtype));
    kernels::launch_gather_rows(x.dtype, x.data, steps_.device().logit_rows, out.data, n_out, int(row_elems(x)),
                                stream_);
  }

  void read_logits(const Tensor& logits, std::span<float> dst, int m) override {
    if (capturing_) {  // a host read cannot be part of a graph: this step shape runs eagerly
      capture_broken_ = true;
      return;
    }
    use_device();
    const int64_t vocab = row_elems(logits);
    SSPAN_CHECK(logits.dim(0) >= m && int64_t(dst.size()) >= vocab * m, "read_logits: {} rows of {} into {} floats",
                m, logits.shape_str(), dst.size());
    const int64_t count = vocab * m;
    const float* src = logits_as_f32(logits, count);
    SSPAN_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, size_t(count) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    check_logits_finite(dst.first(size_t(count)), vocab, m, logit_origins_);
  }

  bool sample_on_device(const Tensor& logits, int m, const SamplingOptions& config, std::span<const float> uniforms,
                        std::span<int32_t> ids) override {
    use_device();
    const int64_t vocab = row_elems(logits);
    SSPAN_CHECK(m > 0 && logits.dim(0) >= m && int64_t(ids.size()) >= m, "sample: {} rows of {} into {} ids", m,
                logits.shape_str(), ids.size());
    const float* src = logits_as_f32(logits, vocab * m);
    if (sample_ids_.bytes() < size_t(m) * sizeof(int32_t)) {  // first use: sized for the logit rows
      const size_t rows = size_t(logits.dim(0));
      sample_ids_ = DeviceBuffer(rows * sizeof(int32_t), "sampled ids");
      sample_uniforms_ = DeviceBuffer(rows * sizeof(float), "sampling uniforms");
      sample_host_ = PinnedBuffer(rows * (sizeof(int32_t) + sizeof(float)));
    }
    auto* ids_dev = static_cast<int32_t*>(sample_ids_.get());
    auto* ids_host = static_cast<int32_t*>(sample_host_.get());
    if (config.temperature <= 0.f) {
      kernels::launch_argmax(src, m, int(vocab), ids_dev, stream_);
    } else {
      SSPAN_CHECK(int64_t(uniforms.size()) >= m, "sample: {} uniforms for {} rows", uniforms.size(), m);
      auto* u_host = reinterpret_cast<float*>(ids_host + logits.dim(0));
      std::copy(uniforms.begin(), uniforms.begin() + m, u_host);
      SSPAN_CUDA_CHECK(cudaMemcpyAsync(sample_uniforms_.get(), u_host, size_t(m) * sizeof(float),
                                       cudaMemcpyHostToDevice, stream_));
      kernels::SamplingParams p;
      p.logits = src;
      p.uniforms = static_cast<const float*>(sample_uniforms_.get());
      p.out = ids_dev;
      p.rows = m;
      p.vocab = int(vocab);
      p.temperature = config.temperature;
      p.top_k = config.top_k;
      p.top_p = config.top_p;
      kernels::launch_sample(p, stream_);
    }
    SSPAN_CUDA_CHECK(cudaMemcpyAsync(ids_host, ids_dev, size_t(m) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int r = 0; r < m; ++r) {  // the kernels flag rows they could not choose from
      SSPAN_CHECK(ids_host[r] != kernels::kNonFiniteRow,
                  "the logits after {} are not finite (NaN or an infinity): the activations overflowed {} or a "
                  "weight holds NaN",
                  logit_origins_.describe(r), dtype_name(dtype_));
      SSPAN_CHECK(ids_host[r] >= 0 && ids_host[r] < vocab, "device sampling chose id {} for {}, outside [0, {})",
                  ids_host[r], logit_origins_.describe(r), vocab);
    }
    std::copy(ids_host, ids_host + m, ids.begin());
    return true;
  }

 private:
  // The first `count` logits as fp32 on the device (converted into a scratch buffer when
  // the logits are kept in the activation dtype).
  const float* logits_as_f32(const Tensor& logits, int64_t count) {
    if (logits.dtype == DType::F32) return logits.ptr<float>();
    if (logits_f32_.bytes() < size_t(count) * sizeof(float))
      logits_f32_ = DeviceBuffer(size_t(count) * sizeof(float), "fp32 logits");
    kernels::launch_convert(logits.dtype, logits.data, DType::F32, logits_f32_.get(), count, stream_);
    return static_cast<const float*>(logits_f32_.get());
  }

  // rows, logit rows, block size, mask words, decode rows, prefill tiles, decode splits,
  // mass rows, query rows
  using GraphKey = std::tuple<int, int, int, int, int, int, int, int, int>;

  // Room for the attention record of `mass_rows` and `query_rows` rows; true when a buffer
  // moved (captured graphs hold its address). Query heads are at most kDecodeMaxGroup per
  // KV head, so the scores are sized before the first attention call names them.
  bool reserve_records(int mass_rows, int query_rows) {
    bool moved = false;
    if (mass_rows > mass_capacity_) {
      SSPAN_CHECK(kv_.layers > 0, "set_step: the KV cache is not allocated");
      const size_t C = size_t(kv_.max_ctx), heads = size_t(kv_.kv_heads) * kernels::kDecodeMaxGroup;
      const size_t rows = size_t(mass_rows);
      SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffers may still be in use
      raw_scores_ = DeviceBuffer(rows * heads * C * sizeof(float), "attention record scores");
      score_lse_ = DeviceBuffer(rows * heads * sizeof(float), "attention record normalisers");
      mass_ = DeviceBuffer(rows * size_t(kv_.layers) * size_t(kv_.kv_heads) * C * sizeof(float),
                           "attention mass [records][L][Hkv][C]");
      mass_capacity_ = mass_rows;
      moved = true;
    }
    if (query_rows > query_capacity_) {
      SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
      queries_ = DeviceBuffer(size_t(query_rows) * size_t(kv_.head_dim) * sizeof(float), "recorded queries");
      query_capacity_ = query_rows;
      moved = true;
    }
    return moved;
  }

  void expect(const Tensor& t, DType dtype, const char* what) const {
    SSPAN_CHECK(t.device == Device::CUDA && t.data != nullptr, "{}: not a CUDA tensor", what);
    SSPAN_CHECK(t.dtype == dtype, "{}: dtype {} but {} expected", what, dtype_name(t.dtype), dtype_name(dtype));
  }
  void check_rows(int n, const char* what) const {
    SSPAN_CHECK(n == steps_.info().rows, "{}: {} rows but the step has {}", what, n, steps_.info().rows);
  }
  void check_layer(int layer, const char* what) const {
    SSPAN_CHECK(kv_.layers > 0, "{}: the KV cache is not allocated", what);
    SSPAN_CHECK(layer >= 0 && layer < kv_.layers, "{}: layer {} outside [0, {})", what, layer, kv_.layers);
  }
  void* cache_layer(const DeviceBuffer& cache, int layer) const {
    const size_t per_layer = cache.bytes() / size_t(kv_.layers);
    return static_cast<char*>(cache.get()) + per_layer * size_t(layer);
  }

  DType dtype_;
  int device_index_;
  CudaBackendOptions options_;
  std::string device_name_;
  cuda::DeviceLimits limits_;
  int decode_warps_ = 4, prefill_keys_ = 64, decode_ctas_per_sm_ = 1;
  int decode_splits_ = 1;  // of the current step
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer cublas_workspace_;
  std::unique_ptr<cuda::WeightUploader> uploader_;

  KvCacheShape kv_;
  DeviceBuffer k_cache_, v_cache_;           // [L][S][Hkv][C][D] each
  DeviceBuffer part_o_, part_m_, part_d_;    // decode split states
  int64_t part_states_ = 0;                  // (row, head, split) states they hold
  DeviceBuffer logits_f32_;                  // [m, V] fp32 for read_logits and sampling
  DeviceBuffer sample_ids_, sample_uniforms_;  // [M] chosen ids, [M] uniforms
  PinnedBuffer sample_host_;                 // [M] ids then [M] uniforms, host side
  // The attention record (mass rows, query rows of the current step).
  DeviceBuffer raw_scores_;   // [records][Hkv * kDecodeMaxGroup][C] decode-kernel scores, one layer
  DeviceBuffer score_lse_;    // [records][Hkv * kDecodeMaxGroup] their softmax normalisers
  DeviceBuffer mass_;         // [records][L][Hkv][C] attention mass per key
  DeviceBuffer queries_;      // [query rows][D] mean last-layer query
  DeviceBuffer top_keys_;     // [L][Hkv][k] of read_attention_top_k
  int mass_capacity_ = 0, query_capacity_ = 0;  // records they hold
  std::vector<int32_t> mass_pos_;                // [mass rows] position of each, host side
  int64_t vocab_ = 0;
  LogitRowOrigins logit_origins_;  // the current step's logit rows, for error messages

  cuda::StepBuffers steps_;
  std::map<GraphKey, GraphExecPtr> graphs_;
  std::set<GraphKey> uncapturable_;
  bool capturing_ = false;
  bool capture_broken_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device_index, const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(dtype, device_index, options);
}

std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device_index) {
  return make_cuda_backend(dtype, device_index, CudaBackendOptions{});
}

namespace cuda {

AttentionRouting attention_routing() {
  const RoutingCounters& c = routing_counters();
  return {c.steps.load(), c.prefill_steps.load(), c.decode_steps.load(), c.mixed_steps.load(), c.prefill_rows.load(),
          c.decode_rows.load()};
}

void reset_attention_routing() {
  RoutingCounters& c = routing_counters();
  for (std::atomic<int64_t>* v : {&c.steps, &c.prefill_steps, &c.decode_steps, &c.mixed_steps, &c.prefill_rows,
                                  &c.decode_rows})
    v->store(0);
}

}  // namespace cuda

}  // namespace sspan
