// fp16 instantiations of the block-sparse decode attention (one file per dtype so the
// instantiations compile in parallel).
#include "sparse_decode_attention.cuh"

namespace sspan::kernels {
void launch_sparse_decode_f16(const SparseDecodeParams& p, cudaStream_t stream) {
  decode::launch_for_type<__half>(p, stream);
}
int sparse_decode_ctas_per_sm_f16(int head_dim, int warps) { return decode::ctas_per_sm_for_type<__half>(head_dim, warps); }
}  // namespace sspan::kernels
