// sspan-bench attention: the CPU backend's attention op, timed on one decode step (one
// query row per sequence at the last position of its context) for dense rows and for span
// patterns, over a KV cache larger than the last-level cache (enough layers are allocated
// and walked in turn that each layer's K/V is cold when it is read, as in a forward pass).
// Reports ns per attended key, the GB/s of attended K/V bytes and their share of the host
// read bandwidth measured in the same run, the cost per key against dense, and the span
// bookkeeping of a step (set_step: validation + decoding the span) against the attention of
// the model's layers. Beside the op, the same attended bytes are read with no arithmetic
// (ReadOnlyWalk): what the memory system alone charges for a pattern's runs, the bound the
// op's cost per key is measured against.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "bench.h"
#include "common/check.h"
#include "cpu/attention_kernels.h"
#include "cpu/span_attention.h"
#include "cpu/thread_pool.h"
#include "model/backend.h"

namespace sspan::bench {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Shape {
  std::string name;
  int q_heads, kv_heads, head_dim, layers;  // layers: the model's, for the bookkeeping share
};

// "tiny" (models/arith-tiny), "110m" (sspan-random-model --preset 100m), or
// "Hq:Hkv:D:layers", e.g. "32:8:128:32".
Shape parse_shape(const std::string& s) {
  if (s == "tiny") return {s, 6, 6, 32, 4};
  if (s == "110m") return {s, 12, 12, 64, 12};
  Shape out{s, 0, 0, 0, 0};
  SSPAN_CHECK(std::sscanf(s.c_str(), "%d:%d:%d:%d", &out.q_heads, &out.kv_heads, &out.head_dim, &out.layers) == 4 &&
                  out.q_heads > 0 && out.kv_heads > 0 && out.q_heads % out.kv_heads == 0 && out.head_dim > 0 &&
                  out.layers > 0,
              "--shape '{}': use tiny, 110m or Hq:Hkv:D:layers with Hq a multiple of Hkv", s);
  return out;
}

struct AttentionArgs {
  std::vector<std::string> shapes{"tiny", "110m"}, patterns{"dense", "all", "half", "alt64", "cluster16"};
  std::vector<int> batches{1, 16, 48}, contexts{4096};
  std::string kv_dtype = "f16";
  int threads = 0, reps = 15, block = 64, min_cache_mib = 256;
};

// The attended set of one row at position t under `pattern`, as (ranges before the tail,
// tail start). Every non-dense pattern ends in the dense tail of t's own block.
void add_pattern_row(const std::string& pattern, int t, int block, std::mt19937& rng, SpanBatch& span) {
  const int tail = t / block * block;
  std::vector<PosRange> before;
  if (pattern == "all") {
    before.push_back({0, tail});
  } else if (pattern == "half") {
    before.push_back({0, (t + 1) / 2 / block * block});
  } else if (pattern == "alt64") {
    for (int b = 0; b + 64 <= tail; b += 128) before.push_back({b, b + 64});
  } else if (pattern == "cluster16") {
    std::bernoulli_distribution keep(0.5);
    for (int b = 0; b + 16 <= tail; b += 16)
      if (keep(rng)) {
        if (!before.empty() && before.back().end == b) before.back().end = b + 16;
        else before.push_back({b, b + 16});
      }
  } else {
    SSPAN_FAIL("unknown pattern '{}': use dense, all, half, alt64 or cluster16", pattern);
  }
  span.add_row(before, tail, t);
}

// Softmax attention of query row r, head h, in double, from the cache as the backend
// stores it: the check that validates the op before it is timed.
std::vector<double> reference_head(const std::vector<float>& q_row, const std::vector<PosRange>& ranges,
                                   const std::vector<float>& k, const std::vector<float>& v, int h, int D) {
  std::vector<double> s, out(size_t(D), 0.0);
  double mx = -INFINITY;
  for (const auto& r : ranges)
    for (int p = r.begin; p < r.end; ++p) {
      double acc = 0;
      for (int i = 0; i < D; ++i) acc += double(q_row[size_t(h * D + i)]) * k[size_t(p) * D + size_t(i)];
      s.push_back(acc / std::sqrt(double(D)));
      mx = std::max(mx, s.back());
    }
  double den = 0;
  for (double x : s) den += std::exp(x - mx);
  size_t j = 0;
  for (const auto& r : ranges)
    for (int p = r.begin; p < r.end; ++p, ++j)
      for (int i = 0; i < D; ++i) out[size_t(i)] += std::exp(s[j] - mx) / den * v[size_t(p) * D + size_t(i)];
  return out;
}

// A copy of the CPU backend's cache layout, K and V each [layers][slots][C / block][Hkv]
// [block][row_bytes] (src/cpu/cpu_backend.cpp, rows placed by KvLayerView::row), whose
// attended rows are read as 64-bit words and XORed in the op's order: every row a task,
// spread over the threads as the op spreads them, a tile of positions at a time with all
// KV heads of the tile together, and no arithmetic beyond the XOR. Its time for a pattern
// is the memory system's price for the pattern's runs of bytes.
class ReadOnlyWalk {
 public:
  ReadOnlyWalk(int layers, int slots, int kv_heads, int context, size_t row_bytes)
      : view_{nullptr, nullptr, slots, kv_heads, (context + kCpuKvBlock - 1) / kCpuKvBlock * kCpuKvBlock, 0,
              DType::F32, kCpuKvBlock},
        row_words_(row_bytes / 8),
        layer_words_(size_t(slots) * size_t(kv_heads) * size_t(view_.max_ctx) * row_words_),
        k_(size_t(layers) * layer_words_), v_(k_.size()) {
    SSPAN_CHECK(row_bytes % 8 == 0, "read-only walk: rows of {} bytes", row_bytes);
    cpu::parallel_chunks(int64_t(k_.size()), int64_t(1) << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) k_[size_t(i)] = uint64_t(i), v_[size_t(i)] = ~uint64_t(i);
    });
  }

  // Reads `ranges[r]` of every KV head of slot r in `layer`, r < ranges.size().
  void read(int layer, const std::vector<std::vector<PosRange>>& ranges) {
    acc_.assign(size_t(cpu::num_threads()), 0);
    cpu::parallel_for(int64_t(ranges.size()), [&](int64_t r, int thread) {
      const size_t layer_base = size_t(layer) * layer_words_;
      uint64_t a = 0;
      for (const PosRange& range : ranges[size_t(r)])
        for (int p0 = range.begin; p0 < range.end; p0 += cpu::attn::kTileCut)
          for (int h = 0; h < view_.kv_heads; ++h)
            for (int p = p0, end = std::min(range.end, p0 + cpu::attn::kTileCut); p < end;) {
              const int run_end = std::min(end, (p / kCpuKvBlock + 1) * kCpuKvBlock);  // rows adjacent in memory
              const size_t first = layer_base + size_t(view_.row(int(r), h, p)) * row_words_;
              for (size_t i = first; i < first + size_t(run_end - p) * row_words_; ++i) a ^= k_[i] ^ v_[i];
              p = run_end;
            }
      acc_[size_t(thread)] ^= a;  // the reads' result, stored where the caller can see it
    });
  }

 private:
  cpu::KvLayerView view_;  // the layout only: rows are placed by view_.row
  size_t row_words_, layer_words_;
  std::vector<uint64_t> k_, v_, acc_;  // acc_: [threads] each thread's XOR
};

void run_case(const AttentionArgs& a, const Shape& sh, int batch, int context, DType kv_dtype, double bw) {
  const int D = sh.head_dim, Hkv = sh.kv_heads, Hq = sh.q_heads, t = context - 1;
  const double pos_bytes = 2.0 * Hkv * D * double(dtype_size(kv_dtype));  // K + V of one position, one layer
  const double layer_bytes = pos_bytes * batch * context;
  const int layers = std::max(1, int(std::ceil(double(a.min_cache_mib) * (1 << 20) / layer_bytes)));
  auto be = make_cpu_backend(a.threads, kv_dtype);
  be->alloc_kv_cache({layers, batch, Hkv, context, D});

  // Fill every layer with random K/V (uniform in [-2, 2)), one position chunk at a time;
  // keep slot 0 of layer 0 for the validation.
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> uni(-2.f, 2.f);
  const int fill = std::min(context, 256);
  Tensor k = be->alloc({fill, int64_t(Hkv) * D}, DType::F32), v = be->alloc({fill, int64_t(Hkv) * D}, DType::F32);
  const size_t fill_rows = static_cast<size_t>(fill);
  std::vector<int32_t> tokens(fill_rows, 0), pos(fill_rows), slot(fill_rows);
  const std::vector<RowMode> fill_modes(fill_rows, RowMode::Dense);
  std::vector<float> k0(size_t(context) * D), v0(size_t(context) * D);  // layer 0, slot 0, head 0 as stored
  for (int s = 0; s < batch; ++s)
    for (int p0 = 0; p0 < context; p0 += fill) {
      const int n = std::min(fill, context - p0);
      for (int i = 0; i < n; ++i) pos[size_t(i)] = p0 + i, slot[size_t(i)] = s;
      be->set_step({std::span(tokens).first(size_t(n)), std::span(pos).first(size_t(n)), std::span(slot).first(size_t(n)),
                    std::span(fill_modes).first(size_t(n)), nullptr, {}});
      for (int l = 0; l < layers; ++l) {
        for (int64_t i = 0; i < int64_t(n) * Hkv * D; ++i) k.ptr<float>()[i] = uni(rng), v.ptr<float>()[i] = uni(rng);
        be->kv_append(l, k, v, n);
        if (l == 0 && s == 0)
          for (int i = 0; i < n; ++i)
            for (int e = 0; e < D; ++e) {  // what the cache holds after rounding to its type
              const float kx = k.ptr<float>()[int64_t(i) * Hkv * D + e], vx = v.ptr<float>()[int64_t(i) * Hkv * D + e];
              const auto round = [&](float x) {
                return kv_dtype == DType::F16 ? half_to_float(float_to_half(x))
                       : kv_dtype == DType::BF16 ? bf16_to_float(float_to_bf16(x))
                                                 : x;
              };
              k0[size_t(p0 + i) * D + size_t(e)] = round(kx);
              v0[size_t(p0 + i) * D + size_t(e)] = round(vx);
            }
      }
    }

  Tensor q = be->alloc({batch, int64_t(Hq) * D}, DType::F32), out = be->alloc({batch, int64_t(Hq) * D}, DType::F32);
  for (int64_t i = 0; i < q.numel(); ++i) q.ptr<float>()[i] = uni(rng);
  const size_t rows = static_cast<size_t>(batch);
  std::vector<int32_t> step_tokens(rows, 0), step_pos(rows, t), step_slot(rows);
  std::iota(step_slot.begin(), step_slot.end(), 0);
  const std::vector<RowMode> dense_modes(rows, RowMode::Dense), sparse_modes(rows, RowMode::Sparse);

  // Every pattern's step, validated on row 0, query head 0 (KV head 0), layer 0.
  struct Case {
    std::string pattern;
    SpanBatch span;
    double attended = 0;  // mean attended positions per row
    std::vector<std::vector<PosRange>> ranges;  // [batch] each row's attended ranges
    std::vector<double> op_s, book_s, read_s, per_key_vs_dense, read_vs_dense;  // per timed rep
  };
  std::vector<Case> cases;
  for (const std::string& pattern : a.patterns) {
    Case c;
    c.pattern = pattern;
    c.span.reset(a.block);
    std::mt19937 pattern_rng(99);
    if (pattern != "dense")
      for (int s = 0; s < batch; ++s) add_pattern_row(pattern, t, a.block, pattern_rng, c.span);
    for (int s = 0; s < batch; ++s) {
      c.ranges.push_back(pattern == "dense" ? std::vector<PosRange>{{0, t + 1}} : c.span.row_ranges(s));
      c.attended += pattern == "dense" ? double(t + 1) : double(c.span.row_count(s));
    }
    c.attended /= batch;
    cases.push_back(std::move(c));
  }
  const auto step_of = [&](const Case& c) {
    const bool dense = c.pattern == "dense";
    return StepBatch{step_tokens, step_pos, step_slot, dense ? dense_modes : sparse_modes, dense ? nullptr : &c.span, {}};
  };
  const std::vector<float> q0(q.ptr<float>(), q.ptr<float>() + int64_t(Hq) * D);
  for (const Case& c : cases) {
    be->set_step(step_of(c));
    be->attention(0, q, out, batch);
    const auto want = reference_head(q0, c.ranges[0], k0, v0, 0, D);
    for (int i = 0; i < D; ++i)
      SSPAN_CHECK(std::abs(out.ptr<float>()[i] - want[size_t(i)]) <= 1e-4 * std::max(1.0, std::abs(want[size_t(i)])),
                  "validation: {} pattern '{}' element {}: {} against the reference {}", sh.name, c.pattern, i,
                  out.ptr<float>()[i], want[size_t(i)]);
  }

  // The patterns take turns within every rep, so a change in the machine's load hits them
  // alike; ratios against dense are taken rep by rep. Rep 0 warms up.
  ReadOnlyWalk walk(layers, batch, Hkv, context, size_t(D) * dtype_size(kv_dtype));
  const Case* dense = nullptr;
  for (const Case& c : cases)
    if (c.pattern == "dense") dense = &c;
  for (int rep = 0; rep <= a.reps; ++rep)
    for (Case& c : cases) {
      auto t0 = Clock::now();
      be->set_step(step_of(c));
      const double set_s = seconds_since(t0);
      t0 = Clock::now();
      for (int l = 0; l < layers; ++l) be->attention(l, q, out, batch);
      const double op_s = seconds_since(t0) / layers;
      t0 = Clock::now();
      for (int l = 0; l < layers; ++l) walk.read(l, c.ranges);
      if (rep == 0) continue;
      c.read_s.push_back(seconds_since(t0) / layers);
      c.op_s.push_back(op_s);
      c.book_s.push_back(set_s);
    }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };

  fmt::print("\n{} (Hq {}, Hkv {}, D {}), batch {}, context {}, {} KV cache: {} layers of {:.0f} MiB walked in turn\n",
             sh.name, Hq, Hkv, D, batch, context, dtype_name(kv_dtype), layers, layer_bytes / (1 << 20));
  fmt::print("| pattern | attended | ns/key | GB/s K/V | % of bandwidth | per key vs dense [min, max] | "
             "op time vs dense | read-only GB/s | read-only per key vs dense | bookkeeping us | "
             "bookkeeping % of {} layers |\n",
             sh.layers);
  fmt::print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (Case& c : cases) {
    const double op = median(c.op_s), keys = c.attended * batch;
    const double ns_key = op * 1e9 / keys, gbs = keys * pos_bytes / op / 1e9;
    std::string vs_dense = "-", time_vs = "-", read_vs = "-";
    if (dense) {
      const double dense_keys = dense->attended * batch;
      for (size_t i = 0; i < c.op_s.size(); ++i) {
        c.per_key_vs_dense.push_back(c.op_s[i] / keys / (dense->op_s[i] / dense_keys));
        c.read_vs_dense.push_back(c.read_s[i] / keys / (dense->read_s[i] / dense_keys));
      }
      const auto [lo, hi] = std::minmax_element(c.per_key_vs_dense.begin(), c.per_key_vs_dense.end());
      vs_dense = fmt::format("{:.3f} [{:.2f}, {:.2f}]", median(c.per_key_vs_dense), *lo, *hi);
      time_vs = fmt::format("{:.3f}", op / median(dense->op_s));
      read_vs = fmt::format("{:.3f}", median(c.read_vs_dense));
    }
    const double book = median(c.book_s), read_gbs = keys * pos_bytes / median(c.read_s) / 1e9;
    fmt::print("| {} | {:.1f}% | {:.2f} | {:.2f} | {:.1f} | {} | {} | {:.2f} | {} | {:.1f} | {:.2f} |\n", c.pattern,
               100.0 * c.attended / (t + 1), ns_key, gbs, bw > 0 ? 100.0 * gbs / bw : 0.0, vs_dense, time_vs,
               read_gbs, read_vs, book * 1e6, 100.0 * book / (op * sh.layers));
  }
}

void run(const AttentionArgs& a) {
  DType kv_dtype;
  SSPAN_CHECK(parse_dtype(a.kv_dtype, &kv_dtype), "--kv-dtype '{}' is not one of f32, f16, bf16", a.kv_dtype);
  std::vector<Shape> shapes;
  for (const auto& s : a.shapes) shapes.push_back(parse_shape(s));
  for (const auto& c : a.contexts) SSPAN_CHECK(c >= 2, "--context {} must be at least 2", c);
  const double bw = host_read_bandwidth_gbs(a.threads);
  fmt::print("{}\nbackend: {} | measured memory read bandwidth {:.1f} GB/s\n", build_description(),
             make_cpu_backend(a.threads, kv_dtype)->name(), bw);
  fmt::print("One attention op = one layer of one decode step: every row at the last position of its context.\n"
             "ns/key = op time / (rows x attended positions); GB/s = attended K/V bytes of all KV heads / op time;\n"
             "medians over {} reps in which the patterns take turns; per key vs dense is taken rep by rep;\n"
             "read-only = the same attended K/V bytes read with no arithmetic, in the cache's layout: the memory\n"
             "system's own price for the pattern's runs;\n"
             "bookkeeping = set_step (span validation and decoding) against the attention of the model's layers.\n",
             a.reps);
  for (const auto& sh : shapes)
    for (int context : a.contexts)
      for (int batch : a.batches) run_case(a, sh, batch, context, kv_dtype, bw);
}

}  // namespace

void add_attention_bench(CLI::App& app) {
  auto a = std::make_shared<AttentionArgs>();
  auto* sub = app.add_subcommand("attention", "CPU attention op: dense and span patterns against memory bandwidth");
  sub->add_option("--shape", a->shapes, "tiny, 110m or Hq:Hkv:D:layers (comma-separated)")->delimiter(',');
  sub->add_option("--batch", a->batches, "Batch sizes")->delimiter(',')->check(CLI::PositiveNumber);
  sub->add_option("--context", a->contexts, "Context lengths (the query is at the last position)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  sub->add_option("--pattern", a->patterns, "dense, all, half, alt64, cluster16 (comma-separated)")
      ->delimiter(',')
      ->check(CLI::IsMember({"dense", "all", "half", "alt64", "cluster16"}));
      
  sub->add_option("--kv-dtype", a->kv_dtype, "KV cache type")->check(CLI::IsMember({"f32", "f16", "bf16"}));
  sub->add_option("--block", a->block, "Span block size")->check(CLI::IsMember({16, 32, 64, 128, 256}));
  sub->add_option("--reps", a->reps, "Timed repetitions")->check(CLI::PositiveNumber);
  sub->add_option("--min-cache-mib", a->min_cache_mib, "Allocate layers until the KV cache is at least this big")
      ->check(CLI::PositiveNumber);
  sub->add_option("-t,--threads", a->threads, "CPU threads (0 = all)");
  sub->callback([a] { run(*a); });
}

}  // namespace sspan::bench
