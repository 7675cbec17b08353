// fp16 instantiations of the block-sparse decode attention (one file per dtype so the
// instantiations compile in parallel).
#include "sparse_decode_attention.cuh"

namespace sspan::kernels {
void launch_sparse_decode_f16(const SparseDecodeParams& p, cudaStream_t stream) {
  decode::launch_for_type<__half>(p, stream);
}
}  // namespace sspan::kernels
