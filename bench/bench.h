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

void add_decode_bench(CLI::App& app);  // bench_decode.cpp: end-to-end decode tokens/s
void add_span_bench(CLI::App& app);    // bench_span.cpp: span state + blocked encoding cost
void add_soak_bench(CLI::App& app);    // bench_soak.cpp: memory over many generate() calls
#ifdef SSPAN_WITH_CUDA
void add_kernel_bench(CLI::App& app);  // bench_kernel.cu: the paper's Figure 9 kernel sweep
#endif

}  // namespace sspan::bench
