// bf16 instantiations of the block-sparse decode attention.
#include "sparse_decode_attention.cuh"

namespace sspan::kernels {
void launch_sparse_decode_bf16(const SparseDecodeParams& p, cudaStream_t stream) {
  decode::launch_for_type<__nv_bfloat16>(p, stream);
}
int sparse_decode_ctas_per_sm_bf16(int head_dim, int warps) {
  return decode::ctas_per_sm_for_type<__nv_bfloat16>(head_dim, warps);
}
}  // namespace sspan::kernels
