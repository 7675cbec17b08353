#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "bench.h"
#include "cpu/thread_pool.h"
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
                     SSPAN_BUILD_TYPE, cpu, cpu::num_threads(), u.sysname, u.release);
}

double host_read_bandwidth_gbs(int threads) {
  if (threads > 0) cpu::set_num_threads(threads);
  // A buffer far larger than the caches, read in parallel; the best of several passes.
  // Integer XOR is associative, so the compiler vectorises the read loop freely (a float
  // sum would be one long dependency chain and measure add latency, not memory).
  const size_t n = size_t(512) << 20 >> 3;  // 512 MiB of 64-bit words
  std::vector<uint64_t> buf(n);
  const int64_t parts = cpu::num_threads();  // one contiguous part per thread
  auto part = [&](int64_t p) { return std::pair(size_t(p) * n / size_t(parts), size_t(p + 1) * n / size_t(parts)); };
  cpu::parallel_for(parts, [&](int64_t p, int) {
    for (auto [i, end] = part(p); i < end; ++i) buf[i] = i;
  });
  std::vector<uint64_t> acc(static_cast<size_t>(parts));
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu::parallel_for(parts, [&](int64_t p, int) {
      uint64_t a = 0;
      for (auto [i, end] = part(p); i < end; ++i) a ^= buf[i];
      acc[size_t(p)] = a;
    });
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // XOR of 0..n-1 is 0 for n % 4 == 0; using it keeps the loop alive
    if (std::accumulate(acc.begin(), acc.end(), uint64_t(0), std::bit_xor<>()) != 0) return 0;
    best = std::max(best, double(n * 8) / sec / 1e9);
  }
  return best;
}

}  // namespace sspan::bench
