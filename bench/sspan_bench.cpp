// sspan-bench: throughput benchmarks. Each subcommand validates before it times and
// prints the build and the machine with its table.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "bench.h"

int main(int argc, char** argv) {
  CLI::App app{"sspan-bench: throughput sweeps of the sspan engine and its kernels"};
  app.require_subcommand(1);
  sspan::bench::add_decode_bench(app);
  sspan::bench::add_matmul_bench(app);
  sspan::bench::add_attention_bench(app);
  sspan::bench::add_span_bench(app);
  sspan::bench::add_e2e_bench(app);
  sspan::bench::add_serve_bench(app);
  sspan::bench::add_soak_bench(app);
#ifdef SSPAN_WITH_CUDA
  sspan::bench::add_kernel_bench(app);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sspan-bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
