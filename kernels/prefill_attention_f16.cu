// fp16 instantiations of the causal prefill attention.
#include "prefill_attention.cuh"

namespace sspan::kernels {
void launch_prefill_f16(const PrefillParams& p, cudaStream_t stream) { prefill::launch_for_type<__half>(p, stream); }
}  // namespace sspan::kernels
