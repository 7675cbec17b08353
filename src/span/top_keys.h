#pragma once
// The top-k keys of an attention-mass record: what the `recycled` policy keeps of a full
// step, per (layer, KV head). The one host definition: the policy's take_mass uses it,
// and the CUDA backend's selection (Backend::read_attention_top_k) is tested against it.
#include <cstdint>
#include <span>
#include <vector>

namespace sspan::span_detail {

// out = the min(k, mass.size()) keys (indices into mass) of highest mass, ascending; of
// equal masses the earlier key is heavier. `order` is scratch.
void top_k_keys(std::span<const float> mass, int32_t k, std::vector<int32_t>& order, std::vector<int32_t>& out);

}  // namespace sspan::span_detail
