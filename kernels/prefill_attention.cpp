// Host side of the causal prefill attention: parameter checks and dtype dispatch.
#include "prefill_attention.h"

#include "common/check.h"

namespace sspan::kernels {

void launch_prefill_f16(const PrefillParams& p, cudaStream_t stream);
void launch_prefill_bf16(const PrefillParams& p, cudaStream_t stream);

void launch_prefill_attention(const PrefillParams& p, DType dtype, cudaStream_t stream) {
  SSPAN_CHECK(p.head_dim == 64 || p.head_dim == 128, "prefill attention: head_dim {} is not supported (64 or 128)",
              p.head_dim);
  SSPAN_CHECK(p.kv_heads > 0 && p.q_heads % p.kv_heads == 0, "prefill attention: {} query heads over {} KV heads",
              p.q_heads, p.kv_heads);
  if (p.num_tiles == 0) return;
  if (dtype == DType::F16) launch_prefill_f16(p, stream);
  else if (dtype == DType::BF16) launch_prefill_bf16(p, stream);
  else SSPAN_FAIL("prefill attention: dtype {} is not supported (F16 or BF16)", dtype_name(dtype));
}

}  // namespace sspan::kernels
