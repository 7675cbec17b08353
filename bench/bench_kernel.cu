// sspan-bench kernel: the paper's Figure 9 sweep of decode attention, on LLaMA-7B shapes
// (32 query over 32 KV heads) and the GQA shapes of LLaMA-3-8B (32/8) and -70B (64/8).
// For every (head shape, context, cluster size) and every launch variant of our kernel
// (2 or 4 warps per CTA, scalar or tensor-core math): the block-sparse kernel over spans
// that keep a fraction of the context in clusters, the same kernel with a full span
// (dense), and the HF-style baseline (kernel_baseline.h). Every variant is validated
// against the CPU reference, every element, before it is timed; a failed validation
// aborts the sweep. Figures: µs, GB/s of the K/V bytes the span needs, that as % of the
// device-to-device copy bandwidth measured in the same run, and the ratios. The variant
// the backend would choose for the device (src/cuda/kernel_config.h) is marked, and the
// measured best is summarised per head shape: the measured side of that choice.
//
// Span of a row at position t = L - 1: [0, t) is cut into aligned clusters of c tokens
// and `keep` of them, drawn at random, are attended; the dense tail is the current token.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bench.h"
#include "cpu/ops.h"
#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"
#include "cuda/kernel_config.h"
#include "dtype_traits.cuh"
#include "kernel_baseline.h"
#include "sparse_decode_attention.h"
#include "sspan/error.h"
#include "sspan/span.h"

#ifndef SSPAN_GIT_DESCRIBE
#define SSPAN_GIT_DESCRIBE "unknown"
#endif
#define SSPAN_STRINGIFY_(...) #__VA_ARGS__
#define SSPAN_STRINGIFY(...) SSPAN_STRINGIFY_(__VA_ARGS__)

namespace sspan::bench {
namespace {

using cuda::DecodeMath;
using cuda::DeviceBuffer;

std::string strf(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

struct HeadShape {
  int q_heads = 32, kv_heads = 32;
  std::string name() const { return strf("%d/%d", q_heads, kv_heads); }
};

struct Variant {
  int warps = 4;
  DecodeMath math = DecodeMath::Scalar;
  std::string name() const { return strf("%s-w%d", cuda::decode_math_name(math), warps); }
};

struct Options {
  int batch = 64;
  std::vector<std::string> heads{"32/32", "32/8", "64/8"};
  std::vector<int> contexts{1024, 2048, 4096, 8192};
  std::vector<int> clusters{16, 32, 64, 128, 256};
  std::vector<std::string> variants{"all"};
  double keep = 0.5;
  int block_size = 64;
  int head_dim = 128;
  std::string dtype = "f16";
  int iters = 50;
  int warmup = 10;
  int validate_rows = 2;
  std::string format = "md";
  unsigned seed = 1;
  int device = 0;
};

struct Result {
  std::string heads, variant;
  bool chosen = false;  // the backend's choice for this device and group
  int context = 0, cluster = 0;
  double kept = 0;                            // attended fraction of the context
  double us_sparse = 0, us_dense = 0, us_base = 0;
  double bytes_sparse = 0, bytes_dense = 0;   // K/V bytes that must be read
  std::string invalid;  // why this variant's output (sparse, dense or baseline) failed validation; empty: valid
};

HeadShape parse_heads(const std::string& s) {
  HeadShape h;
  const size_t slash = s.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument(s);
    h.q_heads = std::stoi(s.substr(0, slash));
    h.kv_heads = std::stoi(s.substr(slash + 1));
  } catch (const std::exception&) {
    throw Error("sspan-bench kernel: --heads wants QUERY/KV pairs such as 32/8, got '" + s + "'");
  }
  if (h.q_heads < 1 || h.kv_heads < 1 || h.q_heads % h.kv_heads != 0 || h.q_heads / h.kv_heads > 8)
    throw Error("sspan-bench kernel: heads " + s + ": the KV heads must divide the query heads, in groups of <= 8");
  return h;
}

std::vector<Variant> parse_variants(const std::vector<std::string>& names) {
  const std::vector<Variant> all{{4, DecodeMath::Scalar}, {2, DecodeMath::Scalar}, {4, DecodeMath::TensorCore},
                                 {2, DecodeMath::TensorCore}};
  std::vector<Variant> out;
  for (const std::string& n : names) {
    if (n == "all") return all;
    bool found = false;
    for (const Variant& v : all)
      if (v.name() == n) {
        out.push_back(v);
        found = true;
      }
    if (!found)
      throw Error("sspan-bench kernel: unknown variant '" + n + "' (all, scalar-w4, scalar-w2, mma-w4, mma-w2)");
  }
  return out;
}

// Deterministic pseudo-random values in [-1, 1] from a hash of the index.
template <class T>
__global__ void fill_random_kernel(T* out, int64_t count, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 0x9E3779B1u ^ uint32_t(i >> 32) * 0x85EBCA77u ^ seed;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    h *= 0x297A2D39u;
    h ^= h >> 15;
    out[i] = kernels::from_float<T>(float(h) * (2.f / 4294967295.f) - 1.f);
  }
}

void fill_random(DType dtype, void* out, int64_t count, uint32_t seed, cudaStream_t stream) {
  kernels::dispatch_half_types(dtype, "fill_random", [&](auto tag) {
    using T = decltype(tag);
    fill_random_kernel<T><<<1024, 256, 0, stream>>>(static_cast<T*>(out), count, seed);
  });
  SSPAN_CUDA_CHECK_LAUNCH("fill_random_kernel");
}

// Copies on the sweep's stream, complete on return (pageable host memory).
void to_device(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  SSPAN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream));
}

std::vector<float> download_floats(DType dtype, const void* src, size_t count, cudaStream_t stream) {
  std::vector<uint16_t> bits(count);
  SSPAN_CUDA_CHECK(cudaMemcpyAsync(bits.data(), src, count * 2, cudaMemcpyDeviceToHost, stream));
  SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = dtype == DType::F16 ? half_to_float(bits[i]) : bf16_to_float(bits[i]);
  return out;
}

template <class F>
double median_us(int warmup, int iters, cudaStream_t stream, F&& launch) {
  for (int i = 0; i < warmup; ++i) launch();
  cudaEvent_t a, b;
  SSPAN_CUDA_CHECK(cudaEventCreate(&a));
  SSPAN_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> us;
  for (int i = 0; i < iters; ++i) {
    SSPAN_CUDA_CHECK(cudaEventRecord(a, stream));
    launch();
    SSPAN_CUDA_CHECK(cudaEventRecord(b, stream));
    SSPAN_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    SSPAN_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    us.push_back(double(ms) * 1e3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

// Row r at t = L - 1 with `keep` of its aligned clusters of [0, t) attended.
SpanBatch sparse_spans(const Options& o, int length, int cluster, std::mt19937& rng) {
  SpanBatch sb;
  sb.reset(o.block_size);
  const int t = length - 1;
  const int chunks = t / cluster;
  std::vector<int> order(size_t(std::max(chunks, 0)));
  for (int r = 0; r < o.batch; ++r) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int> kept(order.begin(), order.begin() + int(std::lround(o.keep * chunks)));
    std::sort(kept.begin(), kept.end());
    std::vector<PosRange> ranges;
    for (int c : kept) {
      if (!ranges.empty() && ranges.back().end == c * cluster) ranges.back().end += cluster;
      else ranges.push_back({c * cluster, (c + 1) * cluster});
    }
    sb.add_row(ranges, t, t);
  }
  return sb;
}

SpanBatch dense_spans(const Options& o, int length) {
  SpanBatch sb;
  sb.reset(o.block_size);
  for (int r = 0; r < o.batch; ++r) sb.add_dense_row(length - 1);
  return sb;
}

// The span's CSR on the device, kept alive with the parameters that point into it.
struct DeviceSpan {
  DeviceBuffer indptr, ids, masks, tail, pos, slot;
  template <class T>
  static DeviceBuffer copy(const std::vector<T>& v, const char* what, cudaStream_t stream) {
    DeviceBuffer b(std::max<size_t>(1, v.size()) * sizeof(T), what);
    if (!v.empty()) to_device(b.get(), v.data(), v.size() * sizeof(T), stream);
    return b;
  }
  DeviceSpan(const SpanBatch& sb, const std::vector<int32_t>& slots, cudaStream_t s)
      : indptr(copy(sb.indptr, "indptr", s)), ids(copy(sb.block_ids, "block ids", s)),
        masks(copy(sb.masks, "masks", s)), tail(copy(sb.tail_start, "tail starts", s)),
        pos(copy(sb.pos, "positions", s)), slot(copy(slots, "slots", s)) {}
  void fill(kernels::SparseDecodeParams& p, const SpanBatch& sb) const {
    p.indptr = indptr.as<int32_t>();
    p.block_ids = ids.as<int32_t>();
    p.masks = masks.as<uint32_t>();
    p.block_id_stride = 1;
    p.mask_stride = sb.words_per_block();
    p.tail_start = tail.as<int32_t>();
    p.pos = pos.as<int32_t>();
    p.slot = slot.as<int32_t>();
  }
};

// Rows `rows` of `span` as their own batch (for the CPU reference).
SpanBatch select_rows(const SpanBatch& span, const std::vector<int>& rows) {
  SpanBatch out;
  out.reset(span.block_size);
  const int w = span.words_per_block();
  for (int r : rows) {
    for (int e = span.indptr[size_t(r)]; e < span.indptr[size_t(r) + 1]; ++e) {
      out.block_ids.push_back(span.block_ids[size_t(e)]);
      out.masks.insert(out.masks.end(), span.masks.begin() + ptrdiff_t(e) * w, span.masks.begin() + ptrdiff_t(e + 1) * w);
    }
    out.indptr.push_back(int32_t(out.block_ids.size()));
    out.tail_start.push_back(span.tail_start[size_t(r)]);
    out.pos.push_back(span.pos[size_t(r)]);
  }
  return out;
}

// The largest |out - ref| / (|ref| + rms(ref)) over the elements (infinite for a NaN), the
// rule of the CUDA tests: within `tol` means every element is.
double worst_element_error(const std::vector<float>& out, const std::vector<float>& ref) {
  double sum_sq = 0;
  for (float r : ref) sum_sq += double(r) * r;
  const double rms = std::sqrt(sum_sq / double(std::max<size_t>(1, ref.size())));
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    worst = std::max(worst, std::abs(double(out[i]) - ref[i]) / (std::abs(double(ref[i])) + rms + 1e-30));
  }
  return worst;
}

class Sweep {
 public:
  explicit Sweep(const Options& o) : o_(o), variants_(parse_variants(o.variants)) {
    require(o.batch >= 1 && o.iters >= 1 && o.warmup >= 0 && o.keep > 0 && o.keep <= 1, "bad --batch/--iters/--keep");
    require(o.dtype == "f16" || o.dtype == "bf16", "--dtype must be f16 or bf16");
    require(cuda::head_dim_supported(o.head_dim), "--head-dim must be 32, 48, 64, 80, 96 or 128");
    for (const std::string& h : o.heads) shapes_.push_back(parse_heads(h));
    dtype_ = o.dtype == "f16" ? DType::F16 : DType::BF16;
    SSPAN_CUDA_CHECK(cudaSetDevice(o.device));
    SSPAN_CUDA_CHECK(cudaGetDeviceProperties(&prop_, o.device));
    SSPAN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    SSPAN_CUBLAS_CHECK(cublasCreate(&cublas_));
    limits_ = {prop_.multiProcessorCount, int(prop_.sharedMemPerBlockOptin), int(prop_.sharedMemPerMultiprocessor),
               int(prop_.reservedSharedMemPerBlock), prop_.maxBlocksPerMultiProcessor};
    max_ctx_ = *std::max_element(o.contexts.begin(), o.contexts.end());
    int max_q = 1, max_kv = 1;
    for (const HeadShape& h : shapes_) {
      max_q = std::max(max_q, h.q_heads);
      max_kv = std::max(max_kv, h.kv_heads);
    }
    const int64_t cache = int64_t(o.batch) * max_kv * max_ctx_ * o.head_dim;
    k_ = DeviceBuffer(size_t(cache) * 2, "benchmark keys");
    v_ = DeviceBuffer(size_t(cache) * 2, "benchmark values");
    const int64_t qn = int64_t(o.batch) * max_q * o.head_dim;
    q_ = DeviceBuffer(size_t(qn) * 2, "queries");
    for (DeviceBuffer* b : {&out_sparse_, &out_dense_, &out_base_}) *b = DeviceBuffer(size_t(qn) * 2, "outputs");
    scores_ = DeviceBuffer(size_t(o.batch) * max_q * max_ctx_ * 2, "baseline scores");
    mask_ = DeviceBuffer(size_t(o.batch) * max_ctx_, "baseline mask");
    const int64_t states = int64_t(o.batch) * max_q * cuda::kMaxDecodeSplits;
    part_o_ = DeviceBuffer(size_t(states) * o.head_dim * 4, "split outputs");
    part_m_ = DeviceBuffer(size_t(states) * 4, "split maxima");
    part_d_ = DeviceBuffer(size_t(states) * 4, "split sums");
    fill_random(dtype_, k_.get(), cache, o.seed * 3 + 1, stream_);
    fill_random(dtype_, v_.get(), cache, o.seed * 3 + 2, stream_);
    fill_random(dtype_, q_.get(), qn, o.seed * 3 + 3, stream_);
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    copy_gbs_ = device_copy_bandwidth_gbs(o.device);
    for (const Variant& v : variants_)
      ctas_per_sm_[v.warps] = kernels::sparse_decode_ctas_per_sm(dtype_, o.head_dim, v.warps);
    chosen_warps_ = cuda::choose_decode_warps(limits_, o.head_dim, 2);
  }
  ~Sweep() {
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::vector<Result> run() {
    std::mt19937 rng(o_.seed);
    std::vector<Result> results;
    std::vector<int32_t> slots(size_t(o_.batch));
    std::iota(slots.begin(), slots.end(), 0);
    for (const HeadShape& shape : shapes_)
      for (int length : o_.contexts) {
        // Dense and baseline do not depend on the cluster size: timed once per context.
        const SpanBatch dense = dense_spans(o_, length);
        const DeviceSpan dense_dev(dense, slots, stream_);
        std::vector<double> us_dense;
        std::vector<std::string> dense_invalid;  // by variant
        for (const Variant& v : variants_) {
          auto p = params(shape, v, dense, out_dense_);
          dense_dev.fill(p, dense);
          auto run_dense = [&] { kernels::launch_sparse_decode_attention(p, dtype_, stream_); };
          run_dense();
          dense_invalid.push_back(validate(shape, dense, out_dense_, length, 0, "dense " + v.name()));
          us_dense.push_back(median_us(o_.warmup, o_.iters, stream_, run_dense));
        }
        const SpanBatch first_sparse = sparse_spans(o_, length, o_.clusters.front(), rng);
        upload_mask(first_sparse, length);
        BaselineAttention base{q_.get(), k_.get(), v_.get(), mask_.as<uint8_t>(), scores_.get(), out_base_.get(),
                               o_.batch, shape.q_heads, shape.kv_heads, o_.head_dim, max_ctx_, length};
        auto run_base = [&] { run_baseline_attention(base, dtype_, cublas_, stream_); };
        run_base();
        const std::string base_invalid =
            validate(shape, first_sparse, out_base_, length, o_.clusters.front(), "the baseline");
        const double us_base = median_us(o_.warmup, o_.iters, stream_, run_base);

        for (int cluster : o_.clusters) {
          const SpanBatch sparse =
              cluster == o_.clusters.front() ? first_sparse : sparse_spans(o_, length, cluster, rng);
          const DeviceSpan sparse_dev(sparse, slots, stream_);
          int64_t attended = 0;
          for (int row = 0; row < o_.batch; ++row) attended += sparse.row_count(row);
          const double pos_bytes = double(shape.kv_heads) * o_.head_dim * 2 * 2;  // K and V of one position
          for (size_t vi = 0; vi < variants_.size(); ++vi) {
            const Variant& v = variants_[vi];
            auto p = params(shape, v, sparse, out_sparse_);
            sparse_dev.fill(p, sparse);
            auto run_sparse = [&] { kernels::launch_sparse_decode_attention(p, dtype_, stream_); };
            run_sparse();
            Result r;
            for (const std::string& why :
                 {validate(shape, sparse, out_sparse_, length, cluster, "sparse " + v.name()), dense_invalid[vi],
                  base_invalid})
              if (!why.empty()) r.invalid += (r.invalid.empty() ? "" : "; ") + why;
            r.heads = shape.name();
            r.variant = v.name();
            r.chosen = v.warps == chosen_warps_ && v.math == cuda::choose_decode_math(shape.q_heads / shape.kv_heads);
            r.context = length;
            r.cluster = cluster;
            r.kept = double(attended) / (double(o_.batch) * length);
            r.bytes_sparse = double(attended) * pos_bytes;
            r.bytes_dense = double(o_.batch) * length * pos_bytes;
            r.us_sparse = median_us(o_.warmup, o_.iters, stream_, run_sparse);
            r.us_dense = us_dense[vi];
            r.us_base = us_base;
            results.push_back(r);
          }
        }
      }
    return results;
  }

  std::string header() const {
    int mem_clock_khz = 0, bus_bits = 0;
    cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, o_.device);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, o_.device);
    int runtime = 0;
    cudaRuntimeGetVersion(&runtime);
    std::string s = "build: " + build_description() + " | git " + SSPAN_GIT_DESCRIBE +
                    strf(" | nvcc %d.%d | CUDA runtime %d.%d", __CUDACC_VER_MAJOR__, __CUDACC_VER_MINOR__,
                         runtime / 1000, (runtime % 1000) / 10);
#ifdef __CUDA_ARCH_LIST__
    s += strf(" | arch list %s", SSPAN_STRINGIFY(__CUDA_ARCH_LIST__));
#endif
    s += strf("\ndevice: %s | %d SMs | memory clock %.0f MHz, %d-bit bus | copy bandwidth %.1f GB/s (read+write) | "
              "shared memory %d B per block (opt-in), %d B per SM",
              prop_.name, prop_.multiProcessorCount, mem_clock_khz / 1e3, bus_bits, copy_gbs_,
              limits_.max_smem_per_block_optin, limits_.max_smem_per_sm);
    std::string occupancy;
    for (const auto& [warps, n] : ctas_per_sm_) occupancy += strf(" %d warps: %d CTAs/SM;", warps, n);
    s += strf("\nshape: batch %d, head_dim %d, %s, block size %d, keep %.2f, median of %d after %d warm-up | "
              "occupancy:%s backend choice: %d warps, mma for groups >= 4 (marked *)",
              o_.batch, o_.head_dim, o_.dtype.c_str(), o_.block_size, o_.keep, o_.iters, o_.warmup, occupancy.c_str(),
              chosen_warps_);
    return s;
  }

  double copy_gbs() const { return copy_gbs_; }

 private:
  static void require(bool ok, const char* what) {
    if (!ok) throw Error(std::string("sspan-bench kernel: ") + what);
  }

  kernels::SparseDecodeParams params(const HeadShape& shape, const Variant& v, const SpanBatch& span,
                                     DeviceBuffer& out) const {
    kernels::SparseDecodeParams p;
    p.q = q_.get();
    p.k_cache = k_.get();
    p.v_cache = v_.get();
    p.q_row_stride = p.out_row_stride = int64_t(shape.q_heads) * o_.head_dim;
    p.cache_head_stride = int64_t(max_ctx_) * o_.head_dim;
    p.cache_slot_stride = p.cache_head_stride * shape.kv_heads;
    p.max_ctx = max_ctx_;
    p.out = out.get();
    p.part_o = part_o_.as<float>();
    p.part_m = part_m_.as<float>();
    p.part_d = part_d_.as<float>();
    p.rows = o_.batch;
    p.q_heads = shape.q_heads;
    p.kv_heads = shape.kv_heads;
    p.head_dim = o_.head_dim;
    p.block_size = o_.block_size;
    p.scale = 1.f / std::sqrt(float(o_.head_dim));
    p.warps = v.warps;
    p.math = v.math;
    // Splits as the backend chooses them (occupancy of this variant, wave efficiency).
    const int items_per_block = std::max(1, o_.block_size / cuda::kDecodeTileTokens);
    int max_items = 0;
    for (int r = 0; r < span.rows(); ++r) {
      const int tail = span.pos[size_t(r)] - span.tail_start[size_t(r)] + 1;
      max_items = std::max(max_items, (span.indptr[size_t(r) + 1] - span.indptr[size_t(r)]) * items_per_block +
                                          (tail + cuda::kDecodeTileTokens - 1) / cuda::kDecodeTileTokens);
    }
    p.splits = cuda::choose_decode_splits({o_.batch * shape.kv_heads, limits_.sm_count * ctas_per_sm_.at(v.warps),
                                           max_items, cuda::kMaxDecodeSplits});
    return p;
  }

  void upload_mask(const SpanBatch& sb, int length) {
    std::vector<uint8_t> mask(size_t(o_.batch) * length, 0);
    for (int r = 0; r < o_.batch; ++r)
      for (const PosRange& pr : sb.row_ranges(r))
        std::fill(mask.begin() + ptrdiff_t(r) * length + pr.begin, mask.begin() + ptrdiff_t(r) * length + pr.end, 1);
    to_device(mask_.get(), mask.data(), mask.size(), stream_);
  }

  // Rows checked against the CPU: the first, the last and validate_rows - 2 more.
  std::vector<int> validated_rows() const {
    std::vector<int> rows{0};
    if (o_.batch > 1) rows.push_back(o_.batch - 1);
    for (int i = 2; i < o_.validate_rows && i < o_.batch; ++i) rows.push_back(i * o_.batch / o_.validate_rows);
    return rows;
  }

  // Host copies of the validated rows' K/V and q, downloaded once per head shape.
  struct HostRow {
    std::vector<float> k, v, q;
  };
  const HostRow& host_row(const HeadShape& shape, int r) {
    auto& cached = host_rows_[shape.name()];
    auto it = cached.find(r);
    if (it != cached.end()) return it->second;
    const int64_t slot_elems = int64_t(shape.kv_heads) * max_ctx_ * o_.head_dim;
    const int64_t row_elems = int64_t(shape.q_heads) * o_.head_dim;
    const size_t off = size_t(r) * size_t(slot_elems) * 2;
    HostRow h;
    h.k = download_floats(dtype_, k_.as<char>() + off, size_t(slot_elems), stream_);
    h.v = download_floats(dtype_, v_.as<char>() + off, size_t(slot_elems), stream_);
    h.q = download_floats(dtype_, q_.as<char>() + size_t(r) * row_elems * 2, size_t(row_elems), stream_);
    return cached.emplace(r, std::move(h)).first->second;
  }

  // `out` against the CPU span attention over `span` on the validated rows (all heads),
  // every element within the dtype's tolerance: empty, or what failed. A failure marks the
  // variant's rows and the sweep goes on, so that one bad variant does not hide the others.
  std::string validate(const HeadShape& shape, const SpanBatch& span, const DeviceBuffer& out, int length, int cluster,
                const std::string& what) {
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const double tol = dtype_ == DType::BF16 ? 2.5e-2 : 5e-3;  // tests/cuda/cuda_test_util.h
    const int64_t row_elems = int64_t(shape.q_heads) * o_.head_dim;
    for (int r : validated_rows()) {
      const HostRow& h = host_row(shape, r);
      const cpu::KvLayerView kv{h.k.data(), h.v.data(), 1, shape.kv_heads, max_ctx_, o_.head_dim};
      const int32_t slot0 = 0;
      std::vector<float> ref(static_cast<size_t>(row_elems));
      cpu::span_attention(h.q.data(), kv, &slot0, select_rows(span, {r}), ref.data(), 1, shape.q_heads);
      const double err = worst_element_error(
          download_floats(dtype_, out.as<char>() + size_t(r) * row_elems * 2, size_t(row_elems), stream_), ref);
      if (!(err <= tol))
        return strf("validation failed for %s at heads %s, context %d, cluster %d, row %d: worst element error "
                    "%.3g > %.3g (of |ref| + rms)",
                    what.c_str(), shape.name().c_str(), length, cluster, r, err, tol);
    }
    return {};
  }

  Options o_;
  std::vector<Variant> variants_;
  std::vector<HeadShape> shapes_;
  DType dtype_ = DType::F16;
  cudaDeviceProp prop_{};
  cuda::DeviceLimits limits_;
  std::map<int, int> ctas_per_sm_;  // by warps
  std::map<std::string, std::map<int, HostRow>> host_rows_;  // by head shape, then row
  int chosen_warps_ = 4;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int max_ctx_ = 0;
  double copy_gbs_ = 0;
  DeviceBuffer k_, v_, q_, out_sparse_, out_dense_, out_base_, scores_, mask_, part_o_, part_m_, part_d_;
};

double gbs(double bytes, double us) { return bytes / (us * 1e3); }

// Per head shape: the variant with the least total dense and sparse time, and the chosen one.
// A variant with any row that failed validation cannot be the best.
std::string summary(const std::vector<Result>& results) {
  std::map<std::string, std::map<std::string, double>> total;  // heads -> variant -> µs
  std::map<std::string, std::string> chosen;
  std::set<std::pair<std::string, std::string>> invalid;  // (heads, variant)
  for (const Result& r : results) {
    total[r.heads][r.variant] += r.us_sparse + r.us_dense;
    if (r.chosen) chosen[r.heads] = r.variant;
    if (!r.invalid.empty()) invalid.emplace(r.heads, r.variant);
  }
  std::string s;
  for (const auto& [heads, by_variant] : total) {
    const auto rank = [&](const auto& e) {
      return invalid.count({heads, e.first}) ? std::numeric_limits<double>::infinity() : e.second;
    };
    auto best = std::min_element(by_variant.begin(), by_variant.end(),
                                 [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
    if (invalid.count({heads, best->first})) {
      s += strf("heads %s: no variant validated\n", heads.c_str());
      continue;
    }
    const auto c = chosen.find(heads);
    const std::string chosen_name = c == chosen.end() ? std::string("-") : c->second;
    const double chosen_us = c == chosen.end() ? 0 : by_variant.at(c->second);
    s += strf("heads %s: measured best %s (%.0f µs over the sweep); backend choice %s (%.0f µs, %.2fx the best)\n",
              heads.c_str(), best->first.c_str(), best->second, chosen_name.c_str(), chosen_us,
              chosen_us > 0 ? chosen_us / best->second : 0.0);
  }
  return s;
}

void print(const Options& o, const std::string& header, const std::vector<Result>& results, double copy_gbs) {
  if (o.format == "json") {
    auto esc = [](const std::string& in) {
      std::string out;
      for (char c : in) out += c == '"' ? std::string("\\\"") : c == '\n' ? std::string("\\n") : std::string(1, c);
      return out;
    };
    std::printf("{\"header\": \"%s\", \"copy_gbs\": %.2f, \"summary\": \"%s\", \"rows\": [\n", esc(header).c_str(),
                copy_gbs, esc(summary(results)).c_str());
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf("  {\"heads\": \"%s\", \"variant\": \"%s\", \"chosen\": %s, \"context\": %d, \"cluster\": %d, "
                  "\"kept\": %.4f, \"sparse_us\": %.2f, \"dense_us\": %.2f, \"baseline_us\": %.2f, "
                  "\"sparse_gbs\": %.1f, \"dense_gbs\": %.1f, \"sparse_pct_copy\": %.1f, \"dense_pct_copy\": %.1f, "
                  "\"sparse_vs_dense\": %.3f, \"sparse_vs_baseline\": %.3f, \"dense_vs_baseline\": %.3f, "
                  "\"valid\": %s}%s\n",
                  r.heads.c_str(), r.variant.c_str(), r.chosen ? "true" : "false", r.context, r.cluster, r.kept,
                  r.us_sparse, r.us_dense, r.us_base, gbs(r.bytes_sparse, r.us_sparse), gbs(r.bytes_dense, r.us_dense),
                  100 * gbs(r.bytes_sparse, r.us_sparse) / copy_gbs, 100 * gbs(r.bytes_dense, r.us_dense) / copy_gbs,
                  r.us_dense / r.us_sparse, r.us_base / r.us_sparse, r.us_base / r.us_dense,
                  r.invalid.empty() ? "true" : "false", i + 1 < results.size() ? "," : "");
    }
    std::printf("]}\n");
    return;
  }
  const bool csv = o.format == "csv";
  if (csv) {
    std::string commented = "# " + header;
    for (size_t i = 0; (i = commented.find('\n', i)) != std::string::npos; i += 3) commented.replace(i, 1, "\n# ");
    std::printf("%s\n", commented.c_str());
    std::printf("heads,variant,chosen,context,cluster,kept,sparse_us,dense_us,baseline_us,sparse_gbs,dense_gbs,"
                "sparse_pct_copy,dense_pct_copy,sparse_vs_dense,sparse_vs_baseline,dense_vs_baseline,valid\n");
  } else {
    std::printf("%s\n\n", header.c_str());
    std::printf("| heads | variant | context | cluster | kept | sparse µs | dense µs | baseline µs | sparse GB/s | "
                "dense GB/s | sparse %% copy | dense %% copy | sparse vs dense | sparse vs baseline | dense vs "
                "baseline |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  }
  for (const Result& r : results) {
    const char* f = csv ? "%s,%s,%d,%d,%d,%.4f,%.2f,%.2f,%.2f,%.1f,%.1f,%.1f,%.1f,%.3f,%.3f,%.3f,%d\n"
                        : "| %s | %s%s | %d | %d | %.3f | %.1f | %.1f | %.1f | %.0f | %.0f | %.1f | %.1f | %.2fx | "
                          "%.2fx | %.2fx |\n";
    if (csv)
      std::printf(f, r.heads.c_str(), r.variant.c_str(), int(r.chosen), r.context, r.cluster, r.kept, r.us_sparse,
                  r.us_dense, r.us_base, gbs(r.bytes_sparse, r.us_sparse), gbs(r.bytes_dense, r.us_dense),
                  100 * gbs(r.bytes_sparse, r.us_sparse) / copy_gbs, 100 * gbs(r.bytes_dense, r.us_dense) / copy_gbs,
                  r.us_dense / r.us_sparse, r.us_base / r.us_sparse, r.us_base / r.us_dense, int(r.invalid.empty()));
    else
      std::printf(f, r.heads.c_str(), r.variant.c_str(), r.invalid.empty() ? (r.chosen ? " *" : "") : " INVALID",
                  r.context, r.cluster, r.kept,
                  r.us_sparse, r.us_dense, r.us_base, gbs(r.bytes_sparse, r.us_sparse), gbs(r.bytes_dense, r.us_dense),
                  100 * gbs(r.bytes_sparse, r.us_sparse) / copy_gbs, 100 * gbs(r.bytes_dense, r.us_dense) / copy_gbs,
                  r.us_dense / r.us_sparse, r.us_base / r.us_sparse, r.us_base / r.us_dense);
  }
  if (!csv) std::printf("\n%s", summary(results).c_str());
}

}  // namespace

double device_copy_bandwidth_gbs(int device) {
  SSPAN_CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t stream = nullptr;
  SSPAN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const size_t bytes = size_t(1) << 30;
  double us = 0;
  {
    DeviceBuffer src(bytes, "copy bandwidth source"), dst(bytes, "copy bandwidth destination");
    SSPAN_CUDA_CHECK(cudaMemsetAsync(src.get(), 1, bytes, stream));
    us = median_us(2, 10, stream, [&] {
      SSPAN_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream));
    });
  }
  cudaStreamDestroy(stream);
  return 2.0 * double(bytes) / (us * 1e3);  // bytes read plus bytes written
}

void add_kernel_bench(CLI::App& app) {
  auto opts = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand("kernel", "Decode attention kernel sweep (paper Figure 9): sparse vs dense vs "
                                               "baseline, per launch variant");
  sub->add_option("--batch", opts->batch, "Query rows (one sequence each)")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--heads", opts->heads, "Query/KV head pairs (32/32: LLaMA-7B; 32/8: LLaMA-3-8B; 64/8: -70B)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--contexts", opts->contexts, "Context lengths")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--clusters", opts->clusters, "Cluster sizes of the kept tokens")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--variants", opts->variants, "Launch variants: all, or scalar-w4, scalar-w2, mma-w4, mma-w2")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--keep", opts->keep, "Fraction of clusters attended")->capture_default_str();
  sub->add_option("--block-size", opts->block_size, "Span block size B")->check(CLI::IsMember({16, 32, 64, 128, 256}))->capture_default_str();
  sub->add_option("--head-dim", opts->head_dim, "Head dim")->check(CLI::IsMember({32, 48, 64, 80, 96, 128}))->capture_default_str();
  sub->add_option("--dtype", opts->dtype, "f16 or bf16")->check(CLI::IsMember({"f16", "bf16"}))->capture_default_str();
  sub->add_option("--iters", opts->iters, "Timed iterations per kernel")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--warmup", opts->warmup, "Warm-up iterations")->capture_default_str();
  sub->add_option("--validate-rows", opts->validate_rows, "Rows checked against the CPU reference")->capture_default_str();
  sub->add_option("--format", opts->format, "md, csv or json")->check(CLI::IsMember({"md", "csv", "json"}))->capture_default_str();
  sub->add_option("--seed", opts->seed, "Random seed")->capture_default_str();
  sub->add_option("--device", opts->device, "CUDA device index")->capture_default_str();
  sub->callback([opts] {
    Sweep sweep(*opts);
    const std::string header = sweep.header();
    if (opts->format == "md") std::fprintf(stderr, "%s\n", "validating and timing...");
    const std::vector<Result> results = sweep.run();
    print(*opts, header, results, sweep.copy_gbs());
    std::set<std::string> failures;
    size_t invalid_rows = 0;
    for (const Result& r : results)
      if (!r.invalid.empty()) failures.insert(r.invalid), ++invalid_rows;
    for (const std::string& why : failures) std::fprintf(stderr, "sspan-bench kernel: %s\n", why.c_str());
    if (!failures.empty())
      throw Error(strf("sspan-bench kernel: %zu of %zu rows failed validation (marked INVALID)", invalid_rows,
                       results.size()));
  });
}

}  // namespace sspan::bench
