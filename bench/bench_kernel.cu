// sspan-bench kernel: the paper's Figure 9 sweep of decode attention on LLaMA-7B shapes.
// For every (context, cluster size): our block-sparse kernel over spans that keep a
// fraction of the context in clusters, the same kernel with a full span (dense), and the
// HF-style baseline (kernel_baseline.h). Each configuration is validated against the CPU
// reference on a few rows before it is timed; a failed validation aborts the sweep.
//
// Span of a row at position t = L - 1: [0, t) is cut into aligned clusters of c tokens
// and `keep` of them, drawn at random, are attended; the dense tail is the current token.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench.h"
#include "cpu/ops.h"
#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"
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

using cuda::DeviceBuffer;

std::string strf(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

struct Options {
  int batch = 64;
  std::vector<int> contexts{1024, 2048, 4096, 8192};
  std::vector<int> clusters{16, 32, 64, 128, 256};
  double keep = 0.5;
  int block_size = 64;
  int heads = 32;
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
  int context = 0, cluster = 0;
  double kept = 0;                            // attended fraction of the context
  double us_sparse = 0, us_dense = 0, us_base = 0;
  double bytes_sparse = 0, bytes_dense = 0;   // K/V bytes that must be read
};

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

std::vector<float> download_floats(DType dtype, const void* src, size_t count) {
  std::vector<uint16_t> bits(count);
  SSPAN_CUDA_CHECK(cudaMemcpy(bits.data(), src, count * 2, cudaMemcpyDeviceToHost));
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = dtype == DType::F16 ? half_to_float(bits[i]) : bf16_to_float(bits[i]);
  return out;
}

template <class F>
double median_us(const Options& o, cudaStream_t stream, F&& launch) {
  for (int i = 0; i < o.warmup; ++i) launch();
  cudaEvent_t a, b;
  SSPAN_CUDA_CHECK(cudaEventCreate(&a));
  SSPAN_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> us;
  for (int i = 0; i < o.iters; ++i) {
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

// Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written.
double copy_bandwidth_gbs(cudaStream_t stream) {
  const size_t bytes = size_t(1) << 30;
  DeviceBuffer src(bytes, "copy bandwidth source"), dst(bytes, "copy bandwidth destination");
  SSPAN_CUDA_CHECK(cudaMemsetAsync(src.get(), 1, bytes, stream));
  Options o;
  o.warmup = 2;
  o.iters = 10;
  const double us = median_us(o, stream, [&] {
    SSPAN_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream));
  });
  return 2.0 * double(bytes) / (us * 1e3);
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
  static DeviceBuffer copy(const std::vector<T>& v, const char* what) {
    DeviceBuffer b(std::max<size_t>(1, v.size()) * sizeof(T), what);
    if (!v.empty()) SSPAN_CUDA_CHECK(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
    return b;
  }
  DeviceSpan(const SpanBatch& sb, const std::vector<int32_t>& slots)
      : indptr(copy(sb.indptr, "indptr")), ids(copy(sb.block_ids, "block ids")), masks(copy(sb.masks, "masks")),
        tail(copy(sb.tail_start, "tail starts")), pos(copy(sb.pos, "positions")), slot(copy(slots, "slots")) {}
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

double rel_error(const std::vector<float>& out, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    num += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

class Sweep {
 public:
  explicit Sweep(const Options& o) : o_(o) {
    require(o.batch >= 1 && o.iters >= 1 && o.keep > 0 && o.keep <= 1, "bad --batch/--iters/--keep");
    require(o.dtype == "f16" || o.dtype == "bf16", "--dtype must be f16 or bf16");
    dtype_ = o.dtype == "f16" ? DType::F16 : DType::BF16;
    SSPAN_CUDA_CHECK(cudaSetDevice(o.device));
    SSPAN_CUDA_CHECK(cudaGetDeviceProperties(&prop_, o.device));
    SSPAN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    SSPAN_CUBLAS_CHECK(cublasCreate(&cublas_));
    max_ctx_ = *std::max_element(o.contexts.begin(), o.contexts.end());
    const size_t elem = 2;
    const int64_t cache = int64_t(o.batch) * o.heads * max_ctx_ * o.head_dim;
    k_ = DeviceBuffer(size_t(cache) * elem, "benchmark keys");
    v_ = DeviceBuffer(size_t(cache) * elem, "benchmark values");
    const int64_t qn = int64_t(o.batch) * o.heads * o.head_dim;
    q_ = DeviceBuffer(size_t(qn) * elem, "queries");
    for (DeviceBuffer* b : {&out_sparse_, &out_dense_, &out_base_}) *b = DeviceBuffer(size_t(qn) * elem, "outputs");
    scores_ = DeviceBuffer(size_t(o.batch) * o.heads * max_ctx_ * elem, "baseline scores");
    mask_ = DeviceBuffer(size_t(o.batch) * max_ctx_, "baseline mask");
    splits_ = kernels::choose_decode_splits(o.batch, o.heads, prop_.multiProcessorCount, 64);
    const int64_t states = int64_t(o.batch) * o.heads * splits_;
    part_o_ = DeviceBuffer(size_t(states) * o.head_dim * 4, "split outputs");
    part_m_ = DeviceBuffer(size_t(states) * 4, "split maxima");
    part_d_ = DeviceBuffer(size_t(states) * 4, "split sums");
    fill_random(dtype_, k_.get(), cache, o.seed * 3 + 1, stream_);
    fill_random(dtype_, v_.get(), cache, o.seed * 3 + 2, stream_);
    fill_random(dtype_, q_.get(), qn, o.seed * 3 + 3, stream_);
    SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    copy_gbs_ = copy_bandwidth_gbs(stream_);
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
    for (int length : o_.contexts)
      for (int cluster : o_.clusters) {
        const SpanBatch sparse = sparse_spans(o_, length, cluster, rng);
        const SpanBatch dense = dense_spans(o_, length);
        const DeviceSpan sparse_dev(sparse, slots), dense_dev(dense, slots);
        upload_mask(sparse, length);
        auto p_sparse = params(length, out_sparse_), p_dense = params(length, out_dense_);
        sparse_dev.fill(p_sparse, sparse);
        dense_dev.fill(p_dense, dense);
        BaselineAttention base{q_.get(), k_.get(), v_.get(), mask_.as<uint8_t>(), scores_.get(), out_base_.get(),
                               o_.batch, o_.heads, o_.head_dim, max_ctx_, length};
        auto run_sparse = [&] { kernels::launch_sparse_decode_attention(p_sparse, dtype_, stream_); };
        auto run_dense = [&] { kernels::launch_sparse_decode_attention(p_dense, dtype_, stream_); };
        auto run_base = [&] { run_baseline_attention(base, dtype_, cublas_, stream_); };

        run_sparse();
        run_dense();
        run_base();
        SSPAN_CUDA_CHECK(cudaStreamSynchronize(stream_));
        validate(sparse, dense, length, cluster);

        Result r;
        r.context = length;
        r.cluster = cluster;
        int64_t attended = 0;
        for (int row = 0; row < o_.batch; ++row) attended += sparse.row_count(row);
        r.kept = double(attended) / (double(o_.batch) * length);
        const double row_bytes = double(o_.heads) * o_.head_dim * 2 * 2;  // K and V, one position
        r.bytes_sparse = double(attended) * row_bytes;
        r.bytes_dense = double(o_.batch) * length * row_bytes;
        r.us_sparse = median_us(o_, stream_, run_sparse);
        r.us_dense = median_us(o_, stream_, run_dense);
        r.us_base = median_us(o_, stream_, run_base);
        results.push_back(r);
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
    s += strf("\ndevice: %s | %d SMs | memory clock %.0f MHz, %d-bit bus | copy bandwidth %.1f GB/s (read+write)",
              prop_.name, prop_.multiProcessorCount, mem_clock_khz / 1e3, bus_bits, copy_gbs_);
    s += strf("\nshape: batch %d, %d heads, head_dim %d, %s, block size %d, keep %.2f, %d splits, median of %d after %d warm-up",
              o_.batch, o_.heads, o_.head_dim, o_.dtype.c_str(), o_.block_size, o_.keep, splits_, o_.iters, o_.warmup);
    return s;
  }

  double copy_gbs() const { return copy_gbs_; }

 private:
  static void require(bool ok, const char* what) {
    if (!ok) throw Error(std::string("sspan-bench kernel: ") + what);
  }

  kernels::SparseDecodeParams params(int length, DeviceBuffer& out) {
    kernels::SparseDecodeParams p;
    p.q = q_.get();
    p.k_cache = k_.get();
    p.v_cache = v_.get();
    p.q_row_stride = p.out_row_stride = int64_t(o_.heads) * o_.head_dim;
    p.cache_head_stride = int64_t(max_ctx_) * o_.head_dim;
    p.cache_slot_stride = p.cache_head_stride * o_.heads;
    p.max_ctx = max_ctx_;
    p.out = out.get();
    p.part_o = part_o_.as<float>();
    p.part_m = part_m_.as<float>();
    p.part_d = part_d_.as<float>();
    p.rows = o_.batch;
    p.q_heads = p.kv_heads = o_.heads;
    p.head_dim = o_.head_dim;
    p.block_size = o_.block_size;
    p.splits = splits_;
    p.scale = 1.f / std::sqrt(float(o_.head_dim));
    (void)length;
    return p;
  }

  void upload_mask(const SpanBatch& sb, int length) {
    std::vector<uint8_t> mask(size_t(o_.batch) * length, 0);
    for (int r = 0; r < o_.batch; ++r)
      for (const PosRange& pr : sb.row_ranges(r))
        std::fill(mask.begin() + ptrdiff_t(r) * length + pr.begin, mask.begin() + ptrdiff_t(r) * length + pr.end, 1);
    SSPAN_CUDA_CHECK(cudaMemcpy(mask_.get(), mask.data(), mask.size(), cudaMemcpyHostToDevice));
  }

  // Sparse and baseline against the CPU span attention, dense against the CPU dense
  // attention, on the first and last rows (all heads).
  void validate(const SpanBatch& sparse, const SpanBatch& dense, int length, int cluster) {
    std::vector<int> rows{0};
    if (o_.batch > 1) rows.push_back(o_.batch - 1);
    for (int i = 2; i < o_.validate_rows && i < o_.batch; ++i) rows.push_back(i * o_.batch / o_.validate_rows);
    const double tol = dtype_ == DType::BF16 ? 1e-2 : 2e-3;
    const int64_t slot_elems = int64_t(o_.heads) * max_ctx_ * o_.head_dim;
    const int64_t row_elems = int64_t(o_.heads) * o_.head_dim;
    for (int r : rows) {
      const size_t off = size_t(r) * size_t(slot_elems) * 2;
      const std::vector<float> k = download_floats(dtype_, k_.as<char>() + off, size_t(slot_elems));
      const std::vector<float> v = download_floats(dtype_, v_.as<char>() + off, size_t(slot_elems));
      const std::vector<float> q = download_floats(dtype_, q_.as<char>() + size_t(r) * row_elems * 2, size_t(row_elems));
      const cpu::KvLayerView kv{k.data(), v.data(), 1, o_.heads, max_ctx_, o_.head_dim};
      const int32_t slot0 = 0;
      std::vector<float> ref_sparse(static_cast<size_t>(row_elems)), ref_dense(static_cast<size_t>(row_elems));
      cpu::span_attention(q.data(), kv, &slot0, select_rows(sparse, {r}), ref_sparse.data(), 1, o_.heads);
      cpu::span_attention(q.data(), kv, &slot0, select_rows(dense, {r}), ref_dense.data(), 1, o_.heads);
      const auto check = [&](const DeviceBuffer& out, const std::vector<float>& ref, const char* what) {
        const double err = rel_error(download_floats(dtype_, out.as<char>() + size_t(r) * row_elems * 2, size_t(row_elems)), ref);
        if (!(err <= tol))
          throw Error(strf("sspan-bench kernel: validation failed for %s at context %d, cluster %d, row %d: "
                           "relative error %.3g > %.3g", what, length, cluster, r, err, tol));
      };
      check(out_sparse_, ref_sparse, "the sparse kernel");
      check(out_dense_, ref_dense, "the dense kernel");
      check(out_base_, ref_sparse, "the baseline");
    }
  }

  Options o_;
  DType dtype_ = DType::F16;
  cudaDeviceProp prop_{};
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int max_ctx_ = 0, splits_ = 1;
  double copy_gbs_ = 0;
  DeviceBuffer k_, v_, q_, out_sparse_, out_dense_, out_base_, scores_, mask_, part_o_, part_m_, part_d_;
};

void print(const Options& o, const std::string& header, const std::vector<Result>& results, double copy_gbs) {
  auto gbs = [](double bytes, double us) { return bytes / (us * 1e3); };
  if (o.format == "json") {
    std::string esc;
    for (char c : header) esc += c == '"' ? std::string("\\\"") : c == '\n' ? std::string("\\n") : std::string(1, c);
    std::printf("{\"header\": \"%s\", \"copy_gbs\": %.2f, \"rows\": [\n", esc.c_str(), copy_gbs);
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf("  {\"context\": %d, \"cluster\": %d, \"kept\": %.4f, \"sparse_us\": %.2f, \"dense_us\": %.2f, "
                  "\"baseline_us\": %.2f, \"sparse_gbs\": %.1f, \"dense_gbs\": %.1f, \"sparse_pct_copy\": %.1f, "
                  "\"dense_pct_copy\": %.1f, \"sparse_vs_dense\": %.3f, \"sparse_vs_baseline\": %.3f, "
                  "\"dense_vs_baseline\": %.3f}%s\n",
                  r.context, r.cluster, r.kept, r.us_sparse, r.us_dense, r.us_base, gbs(r.bytes_sparse, r.us_sparse),
                  gbs(r.bytes_dense, r.us_dense), 100 * gbs(r.bytes_sparse, r.us_sparse) / copy_gbs,
                  100 * gbs(r.bytes_dense, r.us_dense) / copy_gbs, r.us_dense / r.us_sparse, r.us_base / r.us_sparse,
                  r.us_base / r.us_dense, i + 1 < results.size() ? "," : "");
    }
    std::printf("]}\n");
    return;
  }
  const bool csv = o.format == "csv";
  if (csv) {
    std::string commented = "# " + header;
    for (size_t i = 0; (i = commented.find('\n', i)) != std::string::npos; i += 3) commented.replace(i, 1, "\n# ");
    std::printf("%s\n", commented.c_str());
    std::printf("context,cluster,kept,sparse_us,dense_us,baseline_us,sparse_gbs,dense_gbs,sparse_pct_copy,"
                "dense_pct_copy,sparse_vs_dense,sparse_vs_baseline,dense_vs_baseline\n");
  } else {
    std::printf("%s\n\n", header.c_str());
    std::printf("| context | cluster | kept | sparse µs | dense µs | baseline µs | sparse GB/s | dense GB/s | sparse %% copy "
                "| dense %% copy | sparse vs dense | sparse vs baseline | dense vs baseline |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  }
  for (const Result& r : results) {
    const char* f = csv ? "%d,%d,%.4f,%.2f,%.2f,%.2f,%.1f,%.1f,%.1f,%.1f,%.3f,%.3f,%.3f\n"
                        : "| %d | %d | %.3f | %.1f | %.1f | %.1f | %.0f | %.0f | %.1f | %.1f | %.2fx | %.2fx | %.2fx |\n";
    std::printf(f, r.context, r.cluster, r.kept, r.us_sparse, r.us_dense, r.us_base, gbs(r.bytes_sparse, r.us_sparse),
                gbs(r.bytes_dense, r.us_dense), 100 * gbs(r.bytes_sparse, r.us_sparse) / copy_gbs,
                100 * gbs(r.bytes_dense, r.us_dense) / copy_gbs, r.us_dense / r.us_sparse, r.us_base / r.us_sparse,
                r.us_base / r.us_dense);
  }
}

}  // namespace

void add_kernel_bench(CLI::App& app) {
  auto opts = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand("kernel", "Decode attention kernel sweep (paper Figure 9): sparse vs dense vs baseline");
  sub->add_option("--batch", opts->batch, "Query rows (one sequence each)")->capture_default_str();
  sub->add_option("--contexts", opts->contexts, "Context lengths")->capture_default_str();
  sub->add_option("--clusters", opts->clusters, "Cluster sizes of the kept tokens")->capture_default_str();
  sub->add_option("--keep", opts->keep, "Fraction of clusters attended")->capture_default_str();
  sub->add_option("--block-size", opts->block_size, "Span block size B")->check(CLI::IsMember({16, 32, 64, 128, 256}))->capture_default_str();
  sub->add_option("--heads", opts->heads, "Attention heads (query = KV heads)")->capture_default_str();
  sub->add_option("--head-dim", opts->head_dim, "Head dim")->check(CLI::IsMember({64, 128}))->capture_default_str();
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
  });
}

}  // namespace sspan::bench
