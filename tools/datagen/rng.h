#pragma once
// Deterministic random numbers for dataset generation. Everything here is spelled out
// (xoshiro256**, Lemire-free rejection sampling, Box-Muller) instead of using the
// implementation-defined std:: distributions, so that a seed gives the same bytes with
// any standard library.
#include <cmath>
#include <cstdint>

namespace sspan::data {

class Rng {
 public:
  // One independent stream per (seed, index): record i never depends on record i-1,
  // which keeps parallel generation byte-identical to serial generation.
  Rng(uint64_t seed, uint64_t index) {
    uint64_t x = seed ^ (0x9E3779B97F4A7C15ull * (index + 1));
    for (auto& s : s_) s = splitmix64(x);
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform integer in [lo, hi] (inclusive), by rejection so every value is equally likely.
  int64_t uniform(int64_t lo, int64_t hi) {
    const uint64_t span = uint64_t(hi - lo) + 1;
    if (span == 0) return lo + int64_t(next());  // the full 64-bit range
    const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t v;
    do v = next(); while (v >= limit);
    return lo + int64_t(v % span);
  }

  // Uniform double in (0, 1].
  double unit() { return double((next() >> 11) + 1) * 0x1.0p-53; }

  double normal(double mean, double sd) {
    const double u1 = unit(), u2 = unit();
    return mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t s_[4];
};

}  // namespace sspan::data
