// The LLaMA forward pass. One step, as data:
//   tokens -> embedding -> per layer {RMSNorm -> Q,K,V GEMMs -> RoPE -> append K,V to the
//   cache -> attention over each row's span -> O GEMM -> residual -> RMSNorm -> gate/up
//   GEMMs -> SwiGLU -> down GEMM -> residual} -> final RMSNorm -> LM head.
#include "model/llama.h"

#include <fmt/format.h>

#include <new>
#include <vector>

#include "common/check.h"
#include "common/convert.h"
#include "model/weight_check.h"

namespace sspan {
namespace {

// A checkpoint tensor with the expected shape, or an error naming it.
const TensorInfo& expect(const Checkpoint& ckpt, const std::string& name, std::vector<int64_t> shape) {
  const TensorInfo& t = ckpt.get(name);
  SSPAN_CHECK(t.shape == shape, "{}: tensor '{}' has shape [{}], expected [{}] from config.json",
              ckpt.dir().string(), name, fmt::join(t.shape, ", "), fmt::join(shape, ", "));
  return t;
}

// Norm weights are tiny and used in fp32 on every backend.
Tensor load_norm(Backend& be, const TensorInfo& t) {
  std::vector<float> v(size_t(t.numel()));
  to_f32(t.data, t.dtype, t.numel(), v.data());
  return be.load_table(v);
}

}  // namespace

LlamaModel::LlamaModel(const ModelConfig& c, const Checkpoint& ckpt, Backend& be,
                       const std::function<void(size_t, size_t)>& progress)
    : config_(c), backend_(be) {
  const size_t total = ckpt.total_bytes();
  auto loaded = [&](const TensorInfo& t) {
    weight_bytes_ += t.nbytes;
    if (progress) progress(weight_bytes_, total);
  };
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q = c.q_dim(), kv = c.kv_dim();
  const std::string src = ckpt.dir().string();
  // Every tensor is looked up and shape-checked first (headers only), then all are
  // scanned for NaN/Inf in one parallel pass, then loaded into the backend.
  struct Pending {
    const TensorInfo* info;
    Tensor* dst;
    bool norm;
  };
  std::vector<Pending> pending;
  auto weight = [&](Tensor& dst, const std::string& name, std::vector<int64_t> shape) {
    pending.push_back({&expect(ckpt, name, std::move(shape)), &dst, false});
  };
  auto norm = [&](Tensor& dst, const std::string& name) { pending.push_back({&expect(ckpt, name, {H}), &dst, true}); };

  // The layer count sizes the vector below: check the checkpoint has the last layer
  // first, so that a config claiming 2^31 layers is an error, not a terabyte request.
  const std::string last_layer = fmt::format("model.layers.{}.input_layernorm.weight", c.num_hidden_layers - 1);
  SSPAN_CHECK(ckpt.find(last_layer), "{}: config.json says num_hidden_layers = {} but the checkpoint has no tensor '{}'",
              src, c.num_hidden_layers, last_layer);
  weight(w_.embed, "model.embed_tokens.weight", {V, H});
  w_.layers.resize(size_t(c.num_hidden_layers));  // not resized again: &L.wq stays valid
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    LlamaLayer& L = w_.layers[size_t(l)];
    norm(L.attn_norm, p + "input_layernorm.weight");
    weight(L.wq, p + "self_attn.q_proj.weight", {q, H});
    weight(L.wk, p + "self_attn.k_proj.weight", {kv, H});
    weight(L.wv, p + "self_attn.v_proj.weight", {kv, H});
    weight(L.wo, p + "self_attn.o_proj.weight", {H, q});
    norm(L.ffn_norm, p + "post_attention_layernorm.weight");
    weight(L.w_gate, p + "mlp.gate_proj.weight", {I, H});
    weight(L.w_up, p + "mlp.up_proj.weight", {I, H});
    weight(L.w_down, p + "mlp.down_proj.weight", {H, I});
  }
  norm(w_.final_norm, "model.norm.weight");
  const bool tied = !ckpt.find("lm_head.weight");
  if (tied) {
    SSPAN_CHECK(c.tie_word_embeddings, "{}: no tensor 'lm_head.weight' and tie_word_embeddings is false", src);
  } else {
    weight(w_.lm_head, "lm_head.weight", {V, H});
  }

  std::vector<const TensorInfo*> infos;
  for (const Pending& p : pending) infos.push_back(p.info);
  check_finite(infos, src);
  for (const Pending& p : pending) {
    *p.dst = p.norm ? load_norm(be, *p.info) : be.load_weight(*p.info);
    loaded(*p.info);
  }
  if (tied) w_.lm_head = w_.embed;
  w_.inv_freq = be.load_table(rope_inv_freq(c));
}

void LlamaModel::allocate(int max_rows, int max_logit_rows, int slots, int max_ctx) {
  const ModelConfig& c = config_;
  const int64_t R = max_rows, M = max_logit_rows;
  const DType act = backend_.act_dtype();
  try {
    allocate_buffers(R, M, slots, max_ctx, act);
  } catch (const std::bad_alloc&) {
    const MemoryPlan plan = plan_memory(c, max_rows, max_logit_rows, slots, max_ctx, act, backend_.kv_dtype(),
                                        backend_.device());
    SSPAN_FAIL("out of host memory allocating the model's buffers: {}", plan.summary());
  }
  max_rows_ = max_rows;
  max_logit_rows_ = max_logit_rows;
}

void LlamaModel::allocate_buffers(int64_t R, int64_t M, int slots, int max_ctx, DType act) {
  const ModelConfig& c = config_;
  a_.x = backend_.alloc({R, c.hidden_size}, act);
  a_.xn = backend_.alloc({R, c.hidden_size}, act);
  a_.q = backend_.alloc({R, c.q_dim()}, act);
  a_.k = backend_.alloc({R, c.kv_dim()}, act);
  a_.v = backend_.alloc({R, c.kv_dim()}, act);
  a_.att = backend_.alloc({R, c.q_dim()}, act);
  a_.proj = backend_.alloc({R, c.hidden_size}, act);
  a_.gate = backend_.alloc({R, c.intermediate_size}, act);
  a_.up = backend_.alloc({R, c.intermediate_size}, act);
  a_.ffn = backend_.alloc({R, c.intermediate_size}, act);
  a_.last = backend_.alloc({M, c.hidden_size}, act);
  a_.logits = backend_.alloc({M, c.vocab_size}, DType::F32);
  backend_.alloc_kv_cache({c.num_hidden_layers, slots, c.num_key_value_heads, max_ctx, c.head_dim,
                           c.num_attention_heads});
}

void LlamaModel::forward(const StepBatch& step) {
  const int n = int(step.tokens.size());
  const int m = int(step.logit_rows.size());
  SSPAN_CHECK(n > 0 && n <= max_rows_, "forward: {} rows, the step buffers hold {}", n, max_rows_);
  SSPAN_CHECK(m <= max_logit_rows_, "forward: {} logit rows, the buffers hold {}", m, max_logit_rows_);
  for (int32_t id : step.tokens)
    SSPAN_CHECK(id >= 0 && id < config_.vocab_size, "forward: token id {} outside the vocabulary of {}", id,
                config_.vocab_size);
  backend_.forward_step(step, [&] { forward_body(n, m); });
}

void LlamaModel::forward_body(int n, int m) {
  Backend& be = backend_;
  const float eps = float(config_.rms_norm_eps);
  be.embedding(w_.embed, a_.x, n);
  for (int l = 0; l < config_.num_hidden_layers; ++l) {
    const LlamaLayer& L = w_.layers[size_t(l)];
    // Attention block.
    be.rms_norm(a_.x, L.attn_norm, eps, a_.xn, n);
    be.matmuls(a_.xn, {{L.wq, a_.q}, {L.wk, a_.k}, {L.wv, a_.v}}, n);
    be.rope(a_.q, a_.k, w_.inv_freq, n);
    be.kv_append(l, a_.k, a_.v, n);
    be.attention(l, a_.q, a_.att, n);
    be.matmul(a_.att, L.wo, a_.proj, n);
    be.add(a_.x, a_.proj, n);
    // Feed-forward block.
    be.rms_norm(a_.x, L.ffn_norm, eps, a_.xn, n);
    be.matmuls(a_.xn, {{L.w_gate, a_.gate}, {L.w_up, a_.up}}, n);
    be.swiglu(a_.gate, a_.up, a_.ffn, n);
    be.matmul(a_.ffn, L.w_down, a_.proj, n);
    be.add(a_.x, a_.proj, n);
  }
  if (m == 0) return;
  // Only the rows whose logits are wanted go through the final norm and the LM head.
  be.gather_rows(a_.x, a_.last, m);
  be.rms_norm(a_.last, w_.final_norm, eps, a_.last, m);
  be.matmul(a_.last, w_.lm_head, a_.logits, m);
}

size_t LlamaModel::step_weight_bytes(int rows, int logit_rows) const {
  size_t total = size_t(rows) * size_t(config_.hidden_size) * dtype_size(w_.embed.dtype);
  for (const LlamaLayer& L : w_.layers)
    for (const Tensor* t : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down})
      total += t->nbytes();
  if (logit_rows > 0) total += w_.final_norm.nbytes() + w_.lm_head.nbytes();
  return total;
}

void LlamaModel::read_logits(std::span<float> dst, int m) { backend_.read_logits(a_.logits, dst, m); }

bool LlamaModel::sample_on_device(int m, const SamplingOptions& options, std::span<const float> uniforms,
                                  std::span<int32_t> ids) {
  return backend_.sample_on_device(a_.logits, m, options, uniforms, ids);
}

}  // namespace sspan
