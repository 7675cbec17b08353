#include "span/top_keys.h"

#include <algorithm>
#include <numeric>

namespace sspan::span_detail {

void top_k_keys(std::span<const float> mass, int32_t k, std::vector<int32_t>& order, std::vector<int32_t>& out) {
  order.resize(mass.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t n = std::min(order.size(), size_t(std::max<int32_t>(k, 0)));
  const auto heavier = [&](int32_t a, int32_t b) {
    return mass[size_t(a)] > mass[size_t(b)] || (mass[size_t(a)] == mass[size_t(b)] && a < b);
  };
  std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(n), order.end(), heavier);
  out.assign(order.begin(), order.begin() + std::ptrdiff_t(n));
  std::sort(out.begin(), out.end());
}

}  // namespace sspan::span_detail
