// sspan-bench matmul: the CPU matmul alone on a model's weight shapes, at several row
// counts (1 = batch-1 decode, 8/16 = batched decode, 512 = a prefill step): GFLOP/s and
// GB/s of weights read, median over --reps, for the kernel set the matmul uses, and the
// GFLOP/s as a share of the CPU's multiply-add peak measured in the same run. Also per
// second of CPU time the process used (all its threads), which a busy machine disturbs
// far less than wall time: with -t 1 it is the kernel's speed on one core.
//
// By default every call reads its weights from memory, as a forward pass over a model
// larger than the last-level cache does: the calls cycle through copies of the matrix
// that together exceed any L3 (--weights memory). --weights cache reuses one copy, which
// stays cache-resident for the smaller shapes and prices the kernel alone.
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "bench.h"
#include "common/check.h"
#include "cpu/matmul_kernels.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "sspan/config.h"

namespace sspan::bench {
namespace {

struct MatmulArgs {
  int hidden = 768, intermediate = 2048, vocab = 32000;
  std::string dtype = "float16";
  std::vector<int> rows{1, 16, 512};
  int threads = 0, reps = 5;
  double min_seconds = 0.05;  // per measurement: repeat the matmul until this long
  std::string weights = "memory";
};

// Enough copies of a matrix that cycling through them reads every call's weights from
// memory: together over 256 MiB, more than any last-level cache.
constexpr int64_t kStreamBytes = int64_t(256) << 20;

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct Shape {
  const char* name;
  int64_t out, in;
};

void run(const MatmulArgs& a) {
  DType dt;
  SSPAN_CHECK(parse_dtype(a.dtype, &dt), "--dtype: unknown dtype '{}'", a.dtype);
  if (a.threads > 0) cpu::set_num_threads(a.threads);
  const std::vector<Shape> shapes = {{"qkvo", a.hidden, a.hidden},
                                     {"gate/up", a.intermediate, a.hidden},
                                     {"down", a.hidden, a.intermediate},
                                     {"lm_head", a.vocab, a.hidden}};
  const int max_rows = *std::max_element(a.rows.begin(), a.rows.end());
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.05f);
  int64_t max_in = 0, max_w = 0, max_out = 0;
  for (const Shape& s : shapes) max_in = std::max(max_in, s.in), max_w = std::max(max_w, s.out * s.in),
                                max_out = std::max(max_out, s.out);
  std::vector<float> x(size_t(max_rows * max_in)), y(size_t(max_rows * max_out));
  for (auto& v : x) v = nd(rng);
  // w: the weights in their dtype; max_w random values, repeated to fill kStreamBytes when
  // they come from memory. A shape's copies are consecutive slices of it.
  const bool from_memory = a.weights == "memory";
  const int64_t w_bytes = max_w * int64_t(dtype_size(dt));
  std::vector<std::byte> w(size_t(from_memory ? std::max(w_bytes, kStreamBytes) : w_bytes));
  for (int64_t i = 0; i < max_w; ++i) {
    const float v = nd(rng);
    if (dt == DType::F32) reinterpret_cast<float*>(w.data())[i] = v;
    else reinterpret_cast<uint16_t*>(w.data())[i] = dt == DType::F16 ? float_to_half(v) : float_to_bf16(v);
  }
  for (int64_t at = w_bytes; at < int64_t(w.size()); at += w_bytes)
    std::copy_n(w.data(), std::min<int64_t>(w_bytes, int64_t(w.size()) - at), w.data() + at);

  const char* isa = cpu::matmul_kernels().isa;
  const double peak = host_fma_peak_gflops(isa, 0);
  const int packed = cpu::matmul_kernels().pack_rows;
  fmt::print("{}\nmatmul kernels: {} | weights {}, {}, read from {} | median of {} reps | fp32 FMA peak {:.1f} "
             "GFLOP/s ({} registers, measured)\n\n",
             build_description(), isa, dtype_name(dt),
             packed ? fmt::format("packed in groups of {} rows", packed) : std::string("row-major"),
             from_memory ? "memory (copies over 256 MiB, cycled)" : "cache (one copy)", a.reps, peak, isa);
  fmt::print("| shape (out x in) | rows | GFLOP/s | % of FMA peak | best GFLOP/s | GB/s of weights | µs/call | "
             "GFLOP per CPU-second |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Shape& s : shapes) {
    const int64_t shape_bytes = s.out * s.in * int64_t(dtype_size(dt));
    const int64_t copies = int64_t(w.size()) / shape_bytes;
    // Each copy in the layout the CPU backend loads weights in (packed where the kernels
    // read packed weights), once per shape for every row count.
    std::vector<cpu::MatmulWeight> loaded;
    for (int64_t c = 0; c < copies; ++c)
      loaded.push_back(cpu::pack_for_matmul({w.data() + c * shape_bytes, dt, s.out, s.in}));
    for (int n : a.rows) {
      int64_t next = 0;
      auto call = [&] {
        const cpu::WeightView& view = loaded[size_t(next)].view;
        next = (next + 1) % copies;
        cpu::matmul(x.data(), view, y.data(), n);
      };
      call();  // warm-up
      std::vector<double> us, cpu_us;
      for (int rep = 0; rep < a.reps; ++rep) {
        int calls = 0;
        const double c0 = cpu_seconds();
        const auto t0 = std::chrono::steady_clock::now();
        double sec = 0;
        do {
          call();
          ++calls;
          sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        } while (sec < a.min_seconds);
        us.push_back(1e6 * sec / calls);
        cpu_us.push_back(1e6 * (cpu_seconds() - c0) / calls);
      }
      std::sort(us.begin(), us.end());
      std::sort(cpu_us.begin(), cpu_us.end());
      const double t = us[us.size() / 2], cpu_t = cpu_us[cpu_us.size() / 2];
      const double flops = 2.0 * double(n) * double(s.out) * double(s.in);
      const double bytes = double(s.out) * double(s.in) * double(dtype_size(dt));
      fmt::print("| {} ({} x {}) | {} | {:.1f} | {:.0f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} |\n", s.name, s.out, s.in,
                 n, flops / t / 1e3, 100 * flops / t / 1e3 / peak, flops / us.front() / 1e3, bytes / t / 1e3, t,
                 flops / cpu_t / 1e3);
    }
  }
}

}  // namespace

void add_matmul_bench(CLI::App& app) {
  auto a = std::make_shared<MatmulArgs>();
  auto* sub = app.add_subcommand("matmul", "CPU matmul GFLOP/s on a model's weight shapes (defaults: the 110M shape)");
  sub->add_option("--hidden", a->hidden, "hidden_size")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--intermediate", a->intermediate, "intermediate_size")->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--vocab", a->vocab, "vocab_size")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--dtype", a->dtype, "Weight dtype")->check(CLI::IsMember({"float32", "float16", "bfloat16"}))
      ->capture_default_str();
  sub->add_option("--rows", a->rows, "Input rows per call")->delimiter(',')->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--reps", a->reps, "Repetitions (median reported)")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--weights", a->weights,
                  "Where each call finds its weights: memory (copies beyond the L3, as a forward pass) or cache")
      ->check(CLI::IsMember({"memory", "cache"}))->capture_default_str();
  sub->add_option("-t,--threads", a->threads, "CPU threads (0: the default)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->callback([a] { run(*a); });
}

}  // namespace sspan::bench
