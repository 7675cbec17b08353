// Host side of the block-sparse decode attention: parameter checks and dtype dispatch to
// the per-dtype instantiation files.
#include "sparse_decode_attention.h"

#include "common/check.h"
#include "cuda/kernel_config.h"

namespace sspan::kernels {

// Per-dtype instantiations (sparse_decode_attention_{f16,bf16}.cu).
void launch_sparse_decode_f16(const SparseDecodeParams& p, cudaStream_t stream);
void launch_sparse_decode_bf16(const SparseDecodeParams& p, cudaStream_t stream);
int sparse_decode_ctas_per_sm_f16(int head_dim, int warps);
int sparse_decode_ctas_per_sm_bf16(int head_dim, int warps);

void launch_sparse_decode_attention(const SparseDecodeParams& p, DType dtype, cudaStream_t stream) {
  SSPAN_CHECK(cuda::head_dim_supported(p.head_dim), "sparse decode attention: head_dim {} is not supported ({})",
              p.head_dim, cuda::supported_head_dims());
  SSPAN_CHECK(p.kv_heads > 0 && p.q_heads % p.kv_heads == 0 && p.q_heads / p.kv_heads <= kDecodeMaxGroup,
              "sparse decode attention: {} query heads over {} KV heads (group must divide and be <= {})",
              p.q_heads, p.kv_heads, kDecodeMaxGroup);
  SSPAN_CHECK(p.block_size == 16 || p.block_size == 32 || p.block_size == 64 || p.block_size == 128 ||
                  p.block_size == 256,
              "sparse decode attention: block size {} (16, 32, 64, 128 or 256)", p.block_size);
  SSPAN_CHECK(p.splits >= 1 && p.splits <= cuda::kMaxDecodeSplits &&
                  (p.splits == 1 || (p.part_o && p.part_m && p.part_d)),
              "sparse decode attention: {} splits (1 to {}; more than 1 needs split-state buffers)", p.splits,
              cuda::kMaxDecodeSplits);
  SSPAN_CHECK(p.warps == 2 || p.warps == 4, "sparse decode attention: {} warps per CTA (2 or 4)", p.warps);
  SSPAN_CHECK(p.math == DecodeMath::Scalar || p.math == DecodeMath::TensorCore, "sparse decode attention: bad math");
  SSPAN_CHECK(p.max_ctx > 0 && p.rows >= 0, "sparse decode attention: max_ctx {} / rows {}", p.max_ctx, p.rows);
  SSPAN_CHECK(!p.mass_record || (p.raw_scores && p.score_lse && p.raw_stride >= p.max_ctx),
              "sparse decode attention: recorded rows need score buffers of {} positions per head (stride {})",
              p.max_ctx, p.raw_stride);
  SSPAN_CHECK(p.layer >= 0, "sparse decode attention: layer {}", p.layer);
  if (p.rows == 0) return;
  if (dtype == DType::F16) launch_sparse_decode_f16(p, stream);
  else if (dtype == DType::BF16) launch_sparse_decode_bf16(p, stream);
  else SSPAN_FAIL("sparse decode attention: dtype {} is not supported (F16 or BF16)", dtype_name(dtype));
}

int sparse_decode_ctas_per_sm(DType dtype, int head_dim, int warps) {
  SSPAN_CHECK(cuda::head_dim_supported(head_dim), "sparse decode attention: head_dim {} is not supported ({})",
              head_dim, cuda::supported_head_dims());
  SSPAN_CHECK(warps == 2 || warps == 4, "sparse decode attention: {} warps per CTA (2 or 4)", warps);
  if (dtype == DType::F16) return sparse_decode_ctas_per_sm_f16(head_dim, warps);
  if (dtype == DType::BF16) return sparse_decode_ctas_per_sm_bf16(head_dim, warps);
  SSPAN_FAIL("sparse decode attention: dtype {} is not supported (F16 or BF16)", dtype_name(dtype));
}

}  // namespace sspan::kernels
