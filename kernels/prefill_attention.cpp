// Host side of the causal prefill attention: parameter checks and dtype dispatch.
#include "prefill_attention.h"

#include "common/check.h"

namespace sspan::kernels {

void launch_prefill_f16(const PrefillParams& p, cudaStream_t stream);
void launch_prefill_bf16(const PrefillParams& p, cudaStream_t stream);

void launch_prefill_attention(const PrefillParams& p, DType dtype, cudaStream_t stream) {
  SSPAN_CHECK(cuda::head_dim_supported(p.head_dim), "prefill attention: head_dim {} is not supported ({})", p.head_dim,
              cuda::supported_head_dims());
  SSPAN_CHECK(p.kv_heads > 0 && p.q_heads % p.kv_heads == 0, "prefill attention: {} query heads over {} KV heads",
              p.q_heads, p.kv_heads);
  SSPAN_CHECK(p.keys == 64 || p.keys == 32, "prefill attention: {} keys per tile (64 or 32)", p.keys);
  // A tile of more rows than a CTA holds would write past its shared O and S rows.
  SSPAN_CHECK(p.max_tile_rows >= 0 && p.max_tile_rows <= kPrefillRows,
              "prefill attention: a tile of {} rows (at most {})", p.max_tile_rows, kPrefillRows);
  if (p.num_tiles == 0) return;
  if (dtype == DType::F16) launch_prefill_f16(p, stream);
  else if (dtype == DType::BF16) launch_prefill_bf16(p, stream);
  else SSPAN_FAIL("prefill attention: dtype {} is not supported (F16 or BF16)", dtype_name(dtype));
}

}  // namespace sspan::kernels
