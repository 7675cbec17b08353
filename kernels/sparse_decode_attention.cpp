// Host side of the block-sparse decode attention: parameter checks, split choice, dtype
// dispatch to the per-dtype instantiation files.
#include "sparse_decode_attention.h"

#include <algorithm>

#include "common/check.h"

namespace sspan::kernels {

// Per-dtype instantiations (sparse_decode_attention_{f16,bf16}.cu).
void launch_sparse_decode_f16(const SparseDecodeParams& p, cudaStream_t stream);
void launch_sparse_decode_bf16(const SparseDecodeParams& p, cudaStream_t stream);

int choose_decode_splits(int rows, int kv_heads, int sm_count, int max_splits) {
  const int ctas = std::max(1, rows * kv_heads);
  const int target = 2 * std::max(1, sm_count);
  return std::clamp((target + ctas - 1) / ctas, 1, std::max(1, max_splits));
}

void launch_sparse_decode_attention(const SparseDecodeParams& p, DType dtype, cudaStream_t stream) {
  SSPAN_CHECK(p.head_dim == 64 || p.head_dim == 128,
              "sparse decode attention: head_dim {} is not supported (64 or 128)", p.head_dim);
  SSPAN_CHECK(p.kv_heads > 0 && p.q_heads % p.kv_heads == 0 && p.q_heads / p.kv_heads <= kDecodeMaxGroup,
              "sparse decode attention: {} query heads over {} KV heads (group must divide and be <= {})",
              p.q_heads, p.kv_heads, kDecodeMaxGroup);
  SSPAN_CHECK(p.block_size == 16 || p.block_size == 32 || p.block_size == 64 || p.block_size == 128 ||
                  p.block_size == 256,
              "sparse decode attention: block size {} (16, 32, 64, 128 or 256)", p.block_size);
  SSPAN_CHECK(p.splits >= 1 && (p.splits == 1 || (p.part_o && p.part_m && p.part_d)),
              "sparse decode attention: {} splits need split-state buffers", p.splits);
  SSPAN_CHECK(p.max_ctx > 0, "sparse decode attention: max_ctx must be positive");
  if (p.rows == 0) return;
  if (dtype == DType::F16) launch_sparse_decode_f16(p, stream);
  else if (dtype == DType::BF16) launch_sparse_decode_bf16(p, stream);
  else SSPAN_FAIL("sparse decode attention: dtype {} is not supported (F16 or BF16)", dtype_name(dtype));
}

}  // namespace sspan::kernels
