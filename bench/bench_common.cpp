#include <omp.h>
#include <sys/utsname.h>

#include <chrono>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "bench.h"
#include <fmt/format.h>

namespace sspan::bench {

std::string build_description() {
  std::string cpu = "unknown cpu";
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  utsname u{};
  uname(&u);
  return fmt::format("sspan {} ({} {}, {}) | {} | {} threads | {} {}", SSPAN_VERSION,
#if defined(__clang__)
                     "clang", __clang_version__,
#else
                     "gcc", __VERSION__,
#endif
                     SSPAN_BUILD_TYPE, cpu, omp_get_max_threads(), u.sysname, u.release);
}

double host_read_bandwidth_gbs(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
  // A buffer far larger than the caches, summed in parallel; the best of several passes.
  const size_t n = size_t(256) << 20 >> 2;  // 256 MiB of floats
  std::vector<float> buf(n, 1.0f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (size_t i = 0; i < n; i += 16) {
      float s = 0;
      for (size_t j = 0; j < 16; ++j) s += buf[i + j];
      total += s;
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (total != double(n)) return 0;  // keeps the loop from being optimised away
    best = std::max(best, double(n * 4) / sec / 1e9);
  }
  return best;
}

}  // namespace sspan::bench
