#pragma once
// The CUDA implementation of Backend: weights, activations and the KV cache in fp16 or
// bf16 on one device, GEMMs through cuBLAS (fp32 accumulation), everything else through
// the kernels in kernels/. Attention routes each step's rows (cuda/row_routes.h): dense
// prompt runs to the tensor-core prefill kernel, sparse and decode rows to the block-sparse
// decode kernel, both in one step when it holds both. Decode-shaped steps (one row per
// slot) are captured into a CUDA graph per shape on first use and replayed afterwards.
#include <cstdint>
#include <memory>

#include "cuda/kernel_config.h"
#include "cuda/row_routes.h"
#include "model/backend.h"

namespace sspan {

struct CudaBackendOptions {
  bool use_graphs = true;     // capture and replay decode steps
  int max_graph_rows = 256;   // decode steps with more rows run eagerly
  // Launch choices, normally made from the device's limits (cuda/kernel_config.h); tests and
  // benchmarks force them to cover every configuration.
  int decode_warps = 0;       // 0: cuda::choose_decode_warps; else 2 or 4
  enum class DecodeMathChoice { Auto, Scalar, TensorCore } decode_math = DecodeMathChoice::Auto;
  int min_prefill_run = cuda::kMinPrefillRunRows;  // shorter dense runs use the decode kernel
};

std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device_index, const CudaBackendOptions& options);

namespace cuda {

// Which attention kernel served which rows, summed over every CUDA backend of the process
// since the last reset (counted per forward step, graph replays included): what tests
// assert and what benchmarks report about routing.
struct AttentionRouting {
  int64_t steps = 0;
  int64_t prefill_steps = 0;  // steps that launched the prefill kernel
  int64_t decode_steps = 0;   // steps that launched the decode kernel
  int64_t mixed_steps = 0;    // steps that launched both
  int64_t prefill_rows = 0;   // rows attended by the prefill kernel
  int64_t decode_rows = 0;    // rows attended by the decode kernel
};
AttentionRouting attention_routing();
void reset_attention_routing();

}  // namespace cuda
}  // namespace sspan
