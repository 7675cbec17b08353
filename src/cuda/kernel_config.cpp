#include "cuda/kernel_config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.h"

namespace sspan::cuda {

bool head_dim_supported(int head_dim) {
  return std::find(std::begin(kHeadDims), std::end(kHeadDims), head_dim) != std::end(kHeadDims);
}

std::string supported_head_dims() { return "32, 48, 64, 80, 96 or 128"; }

int ctas_per_sm_by_shared(const DeviceLimits& d, size_t bytes) {
  const size_t per_cta = bytes + size_t(std::max(0, d.reserved_smem_per_block));
  int n = per_cta == 0 ? d.max_blocks_per_sm : int(size_t(std::max(0, d.max_smem_per_sm)) / per_cta);
  if (d.max_blocks_per_sm > 0) n = std::min(n, d.max_blocks_per_sm);
  return n;
}

const char* decode_math_name(DecodeMath m) { return m == DecodeMath::TensorCore ? "mma" : "scalar"; }

DecodeMath choose_decode_math(int group) { return group >= 4 ? DecodeMath::TensorCore : DecodeMath::Scalar; }

int choose_decode_warps(const DeviceLimits& d, int head_dim, int elem_bytes) {
  SSPAN_CHECK(head_dim_supported(head_dim), "decode attention: head_dim {} is not supported ({})", head_dim,
              supported_head_dims());
  int best = 0, best_warps = 0, best_ctas = 0;
  for (int warps : {4, 2}) {
    const size_t bytes = decode_smem_layout(head_dim, elem_bytes, warps).bytes;
    if (bytes > size_t(std::max(0, d.max_smem_per_block_optin))) continue;
    const int ctas = ctas_per_sm_by_shared(d, bytes);
    if (ctas < 1) continue;
    if (ctas * warps > best_warps || (ctas * warps == best_warps && ctas > best_ctas)) {
      best = warps;
      best_warps = ctas * warps;
      best_ctas = ctas;
    }
  }
  SSPAN_CHECK(best > 0,
              "decode attention: head_dim {} needs {} bytes of shared memory per CTA even with 2 warps, the device "
              "allows {} per block and {} per SM",
              head_dim, decode_smem_layout(head_dim, elem_bytes, 2).bytes, d.max_smem_per_block_optin,
              d.max_smem_per_sm);
  return best;
}

int choose_decode_splits(const SplitInputs& in) {
  if (in.ctas <= 0 || in.resident_ctas <= 0) return 1;
  if (double(in.ctas) >= 0.8 * double(in.resident_ctas)) return 1;
  const int cap = std::min({in.max_splits, kMaxDecodeSplits, in.resident_ctas, in.max_items / kMinItemsPerSplit});
  if (cap <= 1) return 1;
  auto ceil_div = [](int a, int b) { return (a + b - 1) / b; };
  // A split count is eligible when it changes the items per split (11 and 12 splits of 64
  // items both give 6 per split: 12 would only add empty work).
  auto eligible = [&](int s) { return s == 1 || ceil_div(in.max_items, s) != ceil_div(in.max_items, s - 1); };
  auto efficiency = [&](int s) {
    const double waves = double(in.ctas) * s / double(in.resident_ctas);
    return waves / std::ceil(waves);
  };
  double best = 0;
  for (int s = 1; s <= cap; ++s)
    if (eligible(s)) best = std::max(best, efficiency(s));
  for (int s = 1; s <= cap; ++s)
    if (eligible(s) && efficiency(s) >= 0.85 * best) return s;
  return 1;
}

int plan_decode_splits(int rows, int kv_heads, int64_t held, int resident_ctas, int max_items) {
  if (rows <= 0 || kv_heads <= 0) return 1;
  const int64_t ctas = int64_t(rows) * kv_heads;
  const int64_t capacity = held / (ctas * kDecodeMaxGroup);
  return choose_decode_splits({int(std::min<int64_t>(ctas, std::numeric_limits<int>::max())), resident_ctas,
                               max_items, int(std::min<int64_t>(capacity, 1 << 20))});
}

bool decode_split_states_fit(int64_t rows, int q_heads, int splits, int64_t held) {
  return splits == 1 || rows * int64_t(q_heads) * splits <= held;
}

bool decode_group_supported(int q_heads, int kv_heads) {
  return kv_heads > 0 && q_heads >= kv_heads && q_heads % kv_heads == 0 && q_heads / kv_heads <= kDecodeMaxGroup;
}

int grown_capacity(int current, int needed) {
  if (needed <= current) return current;
  const int64_t grown = int64_t(current) + current / 2;
  return int(std::max<int64_t>(needed, std::min<int64_t>(grown, std::numeric_limits<int>::max())));
}

int choose_prefill_keys(const DeviceLimits& d, int head_dim, int elem_bytes) {
  SSPAN_CHECK(head_dim_supported(head_dim), "prefill attention: head_dim {} is not supported ({})", head_dim,
              supported_head_dims());
  for (int keys : {64, 32})
    if (prefill_smem_layout(head_dim, elem_bytes, keys).bytes <= size_t(std::max(0, d.max_smem_per_block_optin)))
      return keys;
  SSPAN_FAIL("prefill attention: head_dim {} needs {} bytes of shared memory per CTA even with 32-key tiles, the "
             "device allows {} per block",
             head_dim, prefill_smem_layout(head_dim, elem_bytes, 32).bytes, d.max_smem_per_block_optin);
}

void PerDeviceSetting::raise(int device, int value, const std::function<void(int)>& apply) {
  SSPAN_CHECK(device >= 0, "device index {} is negative", device);
  std::lock_guard<std::mutex> lock(mutex_);
  if (size_t(device) >= applied_.size()) applied_.resize(size_t(device) + 1, 0);
  if (applied_[size_t(device)] >= value) return;
  apply(value);
  applied_[size_t(device)] = value;
}

int PerDeviceSetting::applied(int device) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return device >= 0 && size_t(device) < applied_.size() ? applied_[size_t(device)] : 0;
}

}  // namespace sspan::cuda
