#include <omp.h>
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
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
  // A buffer far larger than the caches, read in parallel; the best of several passes.
  // Integer XOR is associative, so the compiler vectorises the read loop freely (a float
  // sum would be one long dependency chain and measure add latency, not memory).
  const size_t n = size_t(512) << 20 >> 3;  // 512 MiB of 64-bit words
  std::vector<uint64_t> buf(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t acc = 0;
#pragma omp parallel for reduction(^ : acc) schedule(static)
    for (size_t i = 0; i < n; ++i) acc ^= buf[i];
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (acc != 0) return 0;  // XOR of 0..n-1 is 0 for n % 4 == 0; using it keeps the loop alive
    best = std::max(best, double(n * 8) / sec / 1e9);
  }
  return best;
}

}  // namespace sspan::bench
