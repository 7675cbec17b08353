#pragma once
// One forward step of the same model on the CPU backend (the reference) and on the CUDA
// backend, and the comparison of their logits: activations are rounded to fp16/bf16 after
// every op on the GPU, so the bound is on the error norm (`bound`) and every logit is
// within 5x that of (|ref| + rms).
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "model/llama.h"

namespace sspan::test {

inline void forward_and_compare(LlamaModel& cpu, LlamaModel& gpu, const StepBatch& step, double bound,
                                const std::string& what) {
  cpu.forward(step);
  gpu.forward(step);
  const int m = int(step.logit_rows.size());
  const size_t V = size_t(cpu.config().vocab_size);
  std::vector<float> a(size_t(m) * V), b(size_t(m) * V, NAN);
  cpu.read_logits(a, m);
  gpu.read_logits(b, m);
  EXPECT_LE(rel_error(b, a), bound) << what;
  expect_close(b, a, 5 * bound, what + " (every logit)");
}

}  // namespace sspan::test
