#pragma once
// Subcommands of sspan-bench. Each registers itself on the app; a benchmark validates its
// configuration against a reference before it times anything.
#include <CLI/CLI.hpp>
#include <string>

namespace sspan::bench {

// Build and machine description printed with every result table.
std::string build_description();

// Measured host memory read bandwidth in GB/s with `threads` threads (0: all).
double host_read_bandwidth_gbs(int threads);

// Measured fp32 multiply-add peak of the CPU in GFLOP/s with `threads` threads (0: all), in
// the vector width of `isa` ("avx512", "avx2" or "scalar", as cpu::MatmulKernels::isa):
// the roof of a FLOP-bound matmul (fma_peak.cpp).
double host_fma_peak_gflops(const std::string& isa, int threads);

void add_decode_bench(CLI::App& app);     // bench_decode.cpp: end-to-end decode tokens/s
void add_matmul_bench(CLI::App& app);     // bench_matmul.cpp: the CPU matmul alone
void add_attention_bench(CLI::App& app);  // bench_attention.cpp: the CPU attention op against bandwidth
void add_span_bench(CLI::App& app);    // bench_span.cpp: span state + blocked encoding cost
void add_e2e_bench(CLI::App& app);     // bench_e2e.cpp: dense-against-span replay of a dataset
void add_serve_bench(CLI::App& app);   // bench_serve.cpp: continuous against static batching
void add_soak_bench(CLI::App& app);    // bench_soak.cpp: memory over many generate() calls
#ifdef SSPAN_WITH_CUDA
void add_kernel_bench(CLI::App& app);  // bench_kernel.cu: the paper's Figure 9 kernel sweep
// Device-to-device copy bandwidth of a 1 GiB buffer in GB/s, bytes read plus bytes written
// (the "% of copy" figures' denominator).
double device_copy_bandwidth_gbs(int device);
#endif

}  // namespace sspan::bench
