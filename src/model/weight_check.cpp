#include "model/weight_check.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/check.h"

namespace sspan {
namespace {

// An element is NaN or Inf when its exponent bits are all ones.
template <class Bits, Bits kExponent>
bool any_non_finite(const std::byte* data, int64_t begin, int64_t end) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  bool bad = false;
  for (int64_t i = begin; i < end; ++i) {  // memcpy: weights need not be aligned
    Bits b;
    std::memcpy(&b, p + size_t(i) * sizeof(Bits), sizeof(Bits));
    bad |= (b & kExponent) == kExponent;
  }
  return bad;
}

bool any_non_finite(const TensorInfo& t, int64_t begin, int64_t end) {
  switch (t.dtype) {
    case DType::F32: return any_non_finite<uint32_t, 0x7f800000u>(t.data, begin, end);
    case DType::F16: return any_non_finite<uint16_t, 0x7c00>(t.data, begin, end);
    case DType::BF16: return any_non_finite<uint16_t, 0x7f80>(t.data, begin, end);
  }
  return false;
}

}  // namespace

int64_t find_non_finite(const TensorInfo& t) {
  const int64_t n = t.numel();
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<char> bad(size_t(chunks), 0);
#pragma omp parallel for schedule(static) if (chunks > 8)
  for (int64_t c = 0; c < chunks; ++c) bad[size_t(c)] = any_non_finite(t, c * kChunk, std::min(n, (c + 1) * kChunk));
  const auto first = std::find(bad.begin(), bad.end(), 1);
  if (first == bad.end()) return -1;
  const int64_t begin = int64_t(first - bad.begin()) * kChunk;
  for (int64_t i = begin;; ++i)
    if (any_non_finite(t, i, i + 1)) return i;
}

void check_finite(const TensorInfo& t, std::string_view source) {
  const int64_t i = find_non_finite(t);
  SSPAN_CHECK(i < 0, "{}: tensor '{}' holds a NaN or Inf (element {} of {}); the checkpoint is damaged", source,
              t.name, i, t.numel());
}

}  // namespace sspan
