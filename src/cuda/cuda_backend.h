#pragma once
// The CUDA implementation of Backend: weights, activations and the KV cache in fp16 or
// bf16 on one device, GEMMs through cuBLAS (fp32 accumulation), everything else through
// the kernels in kernels/. Decode-shaped steps (one row per slot) are captured into a CUDA
// graph per (rows, logit rows, block size) on first use and replayed afterwards.
#include <memory>

#include "model/backend.h"

namespace sspan {

struct CudaBackendOptions {
  bool use_graphs = true;     // capture and replay decode steps
  int max_graph_rows = 256;   // decode steps with more rows run eagerly
};

std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device_index, const CudaBackendOptions& options);

}  // namespace sspan
