#pragma once
// LLaMA: the weights of a Hugging Face LlamaForCausalLM and its forward pass, written once
// against the Backend ops interface.
//
// Shapes: H = hidden, I = intermediate, Hq/Hkv = query/kv heads, D = head_dim, V = vocab,
// R = max rows per step, M = max logit rows per step.
#include <functional>
#include <memory>
#include <vector>

#include "model/backend.h"
#include "model/memory_plan.h"
#include "sspan/checkpoint.h"
#include "sspan/config.h"

namespace sspan {

struct LlamaLayer {
  Tensor attn_norm;  // [H] fp32
  Tensor wq;         // [Hq*D, H]
  Tensor wk;         // [Hkv*D, H]
  Tensor wv;         // [Hkv*D, H]
  Tensor wo;         // [H, Hq*D]
  Tensor ffn_norm;   // [H] fp32
  Tensor w_gate;     // [I, H]
  Tensor w_up;       // [I, H]
  Tensor w_down;     // [H, I]
};

struct LlamaWeights {
  Tensor embed;       // [V, H]
  std::vector<LlamaLayer> layers;
  Tensor final_norm;  // [H] fp32
  Tensor lm_head;     // [V, H] (the embedding when tied)
  Tensor inv_freq;    // [D/2] fp32 RoPE inverse frequencies
};

// Per-step activations, allocated once for R rows and M logit rows.
struct LlamaActivations {
  Tensor x;       // [R, H] residual stream
  Tensor xn;      // [R, H] normalised input of a sub-block
  Tensor q;       // [R, Hq*D]
  Tensor k;       // [R, Hkv*D]
  Tensor v;       // [R, Hkv*D]
  Tensor att;     // [R, Hq*D] attention output (heads concatenated)
  Tensor proj;    // [R, H] output of o_proj / down_proj
  Tensor gate;    // [R, I]
  Tensor up;      // [R, I]
  Tensor ffn;     // [R, I] silu(gate) * up
  Tensor last;    // [M, H] rows whose logits are wanted
  Tensor logits;  // [M, V] fp32
};

class LlamaModel {
 public:
  // Checks every expected tensor (names and shapes of HF LlamaForCausalLM) and loads it
  // into the backend. `ckpt` must outlive the model on backends that use weights in place.
  // `progress(loaded, total)` is called after each tensor (bytes of the checkpoint).
  LlamaModel(const ModelConfig& config, const Checkpoint& ckpt, Backend& backend,
             const std::function<void(size_t, size_t)>& progress = {});

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return backend_; }

  // Allocate activations for steps of up to max_rows rows and max_logit_rows logit rows,
  // and the KV cache for `slots` sequences of max_ctx positions. plan_memory gives the
  // bytes beforehand; running out of memory here is an error listing them.
  void allocate(int max_rows, int max_logit_rows, int slots, int max_ctx);
  int max_rows() const { return max_rows_; }
  int max_logit_rows() const { return max_logit_rows_; }

  // One forward step; afterwards logits of step.logit_rows are in logits() (rows in the
  // order of step.logit_rows) and can be read with read_logits.
  void forward(const StepBatch& step);
  void read_logits(std::span<float> dst, int m);
  // Token selection on the backend's device; false when it leaves that to the host.
  bool sample_on_device(int m, const SamplingOptions& options, std::span<const float> uniforms,
                        std::span<int32_t> ids);

  size_t weight_bytes() const { return weight_bytes_; }  // as stored in the checkpoint
  // Weight bytes one forward step of `rows` rows and `logit_rows` logit rows reads, in the
  // dtype the backend holds each weight in: every layer matrix and norm once, the
  // embedding rows of the step's tokens, the final norm and LM head when logits are wanted.
  size_t step_weight_bytes(int rows, int logit_rows) const;

 private:
  void forward_body(int n, int m);
  void allocate_buffers(int64_t rows, int64_t logit_rows, int slots, int max_ctx, DType act);

  ModelConfig config_;
  Backend& backend_;
  LlamaWeights w_;
  LlamaActivations a_;
  int max_rows_ = 0, max_logit_rows_ = 0;
  size_t weight_bytes_ = 0;
};

}  // namespace sspan
