// A LLaMA model from a GGUF file: the hyper-parameters from llama.* metadata, and the
// tensors under their Hugging Face names. llama.cpp's converter permutes the rows of
// q_proj and k_proj (within each head, the two rotary halves interleaved, for ggml's RoPE);
// the forward pass here uses HF's rotate_half, so those rows are put back in HF order.
// Quantized tensors are dequantized into memory the checkpoint owns.
#include <fmt/format.h>

#include <cstring>
#include <cmath>

#include "common/check.h"
#include "io/dequantize.h"
#include "io/gguf.h"
#include "io/config_sizes.h"
#include "sspan/checkpoint.h"
#include "sspan/config.h"

namespace sspan {
namespace {

int positive_int(const GgufFile& f, std::string_view key, int64_t fallback = -1) {
  const int64_t v = fallback < 0 ? f.integer(key) : f.integer(key, fallback);
  SSPAN_CHECK(v > 0 && v <= (int64_t(1) << 30), "{}: metadata '{}' = {} is out of range", f.path().string(), key, v);
  return int(v);
}

// HF name of a GGUF LLaMA tensor, or "" when it is not one.
std::string hf_name(const std::string& g, int* layer, std::string* role) {
  static const std::pair<const char*, const char*> kTop[] = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  for (const auto& [from, to] : kTop)
    if (g == from) return to;
  static const std::pair<const char*, const char*> kLayer[] = {
      {"attn_norm", "input_layernorm"},     {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},       {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},        {"ffn_up", "mlp.up_proj"},        {"ffn_down", "mlp.down_proj"},
  };
  // "blk.<layer>.<role>.weight"
  std::string_view rest(g);
  if (rest.size() <= 11 || !rest.starts_with("blk.") || !rest.ends_with(".weight")) return {};
  rest = rest.substr(4, rest.size() - 4 - 7);
  const size_t dot = rest.find('.');
  if (dot == 0 || dot > 6 || dot == std::string_view::npos) return {};
  const std::string_view digits = rest.substr(0, dot), r = rest.substr(dot + 1);
  if (digits.find_first_not_of("0123456789") != std::string_view::npos) return {};
  for (const auto& [from, to] : kLayer) {
    if (r != from) continue;
    *layer = std::stoi(std::string(digits));
    *role = from;
    return fmt::format("model.layers.{}.{}.weight", *layer, to);
  }
  return {};
}

void store(DType dt, const float* src, std::byte* dst, int64_t n) {
  switch (dt) {
    case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = float_to_half(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = float_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
  }
}

bool native_dtype(GgmlType t, DType* out) {
  if (t == GgmlType::F32) *out = DType::F32;
  else if (t == GgmlType::F16) *out = DType::F16;
  else if (t == GgmlType::BF16) *out = DType::BF16;
  else return false;
  return true;
}

}  // namespace

ModelConfig ModelConfig::from_gguf(const std::filesystem::path& path) {
  const auto f = GgufFile::open(path);
  const std::string src = path.string();
  const std::string arch = f->text("general.architecture", "");
  SSPAN_CHECK(arch == "llama", "{}: general.architecture '{}' is not supported (sspan runs llama)", src, arch);
  ModelConfig c;
  c.hidden_size = positive_int(*f, "llama.embedding_length");
  c.intermediate_size = positive_int(*f, "llama.feed_forward_length");
  c.num_hidden_layers = positive_int(*f, "llama.block_count");
  c.num_attention_heads = positive_int(*f, "llama.attention.head_count");
  c.num_key_value_heads = positive_int(*f, "llama.attention.head_count_kv", c.num_attention_heads);
  SSPAN_CHECK(c.hidden_size % c.num_attention_heads == 0 || f->get("llama.attention.key_length"),
              "{}: embedding_length {} is not divisible by head_count {}", src, c.hidden_size, c.num_attention_heads);
  c.head_dim = positive_int(*f, "llama.attention.key_length", c.hidden_size / c.num_attention_heads);
  SSPAN_CHECK(positive_int(*f, "llama.attention.value_length", c.head_dim) == c.head_dim,
              "{}: attention.value_length differs from key_length", src);
  SSPAN_CHECK(c.head_dim % 2 == 0, "{}: head dimension {} must be even for rotary embeddings", src, c.head_dim);
  SSPAN_CHECK(positive_int(*f, "llama.rope.dimension_count", c.head_dim) == c.head_dim,
              "{}: llama.rope.dimension_count differs from the head dimension {} (partial rotary is not supported)",
              src, c.head_dim);
  SSPAN_CHECK(c.num_attention_heads % c.num_key_value_heads == 0, "{}: head_count_kv {} does not divide head_count {}",
              src, c.num_key_value_heads, c.num_attention_heads);
  c.rms_norm_eps = f->number("llama.attention.layer_norm_rms_epsilon", 0.0);
  SSPAN_CHECK(c.rms_norm_eps > 0, "{}: llama.attention.layer_norm_rms_epsilon must be positive", src);
  c.rope_theta = f->number("llama.rope.freq_base", 10000.0);
  SSPAN_CHECK(c.rope_theta > 0, "{}: llama.rope.freq_base must be positive", src);
  c.max_position_embeddings = positive_int(*f, "llama.context_length");
  const std::string scaling = f->text("llama.rope.scaling.type", "none");
  if (scaling == "linear") {
    c.rope_scaling.type = RopeScaling::Type::Linear;
    c.rope_scaling.factor = f->number("llama.rope.scaling.factor", 0.0);
    SSPAN_CHECK(c.rope_scaling.factor > 0, "{}: llama.rope.scaling.factor must be positive", src);
  } else {
    SSPAN_CHECK(scaling == "none", "{}: llama.rope.scaling.type '{}' is not supported (none or linear)", src, scaling);
  }
  if (const GgufTensor* t = f->find("rope_freqs.weight")) {
    SSPAN_CHECK(t->type == GgmlType::F32 && t->ne.size() == 1 && t->ne[0] == c.head_dim / 2,
                "{}: rope_freqs.weight must be F32 [{}]", src, c.head_dim / 2);
    c.rope_scaling.freq_factors.resize(size_t(c.head_dim / 2));
    std::memcpy(c.rope_scaling.freq_factors.data(), t->data, t->nbytes);
    for (float x : c.rope_scaling.freq_factors)
      SSPAN_CHECK(std::isfinite(x) && x > 0, "{}: rope_freqs.weight holds {}, not a positive factor", src, x);
  }
  const GgufTensor* embd = f->find("token_embd.weight");
  SSPAN_CHECK(embd && embd->ne.size() == 2, "{}: no 2-D tensor token_embd.weight", src);
  c.vocab_size = positive_int(*f, "llama.vocab_size", embd->ne[1]);
  c.tie_word_embeddings = f->find("output.weight") == nullptr;
  c.bos_token_id = int(f->integer("tokenizer.ggml.bos_token_id", 1));
  c.eos_token_ids = {int(f->integer("tokenizer.ggml.eos_token_id", 2))};
  if (f->get("tokenizer.ggml.eot_token_id")) {
    const int eot = int(f->integer("tokenizer.ggml.eot_token_id"));
    if (eot != c.eos_token_ids[0]) c.eos_token_ids.push_back(eot);
  }
  for (int id : c.eos_token_ids)
    SSPAN_CHECK(id >= 0 && id < c.vocab_size, "{}: EOS id {} is outside the vocabulary of {}", src, id, c.vocab_size);
  SSPAN_CHECK(c.bos_token_id >= 0 && c.bos_token_id < c.vocab_size, "{}: BOS id {} is outside the vocabulary of {}",
              src, c.bos_token_id, c.vocab_size);
  c.torch_dtype = DType::F32;
  check_config_sizes(c, src);
  return c;
}

Checkpoint Checkpoint::open_gguf(const std::filesystem::path& path, DType dtype) {
  const ModelConfig c = ModelConfig::from_gguf(path);
  const auto f = GgufFile::open(path);
  const std::string src = path.string();
  Checkpoint ck;
  ck.dir_ = path;
  ck.owners_.push_back(f);
  auto infos = std::make_shared<std::vector<TensorInfo>>();
  infos->reserve(f->header().tensors.size());
  for (const GgufTensor& g : f->header().tensors) {
    if (g.name == "rope_freqs.weight") continue;  // read into the config
    int layer = -1;
    std::string role;
    const std::string name = hf_name(g.name, &layer, &role);
    SSPAN_CHECK(!name.empty(), "{}: tensor '{}' is not part of a LLaMA model this engine runs", src, g.name);
    SSPAN_CHECK(layer < c.num_hidden_layers, "{}: tensor '{}' is beyond block_count {}", src, g.name,
                c.num_hidden_layers);
    SSPAN_CHECK(can_dequantize(g.type), "{}: tensor '{}' has type {}; sspan reads F32, F16, BF16, Q8_0, Q4_0 and Q4_1",
                src, g.name, ggml_type_name(g.type));
    TensorInfo t;
    t.name = name;
    t.shape.assign(g.ne.rbegin(), g.ne.rend());  // ggml ne[0] is the last (contiguous) HF dimension
    const int heads = role == "attn_q" ? c.num_attention_heads : role == "attn_k" ? c.num_key_value_heads : 0;
    DType native = DType::F32;
    if (native_dtype(g.type, &native) && heads == 0) {  // used as it is, from the mapping
      t.dtype = native;
      t.nbytes = g.nbytes;
      t.data = g.data;
      infos->push_back(std::move(t));
      continue;
    }
    // Dequantized (and for q/k un-permuted) row by row into owned memory.
    t.dtype = native_dtype(g.type, &native) ? native : dtype;
    const int64_t cols = g.ne[0], rows = g.numel() / cols;
    const size_t src_row = g.nbytes / size_t(rows), dst_row = size_t(cols) * dtype_size(t.dtype);
    int64_t head_dim = 0;
    if (heads) {
      SSPAN_CHECK(g.ne.size() == 2 && rows % heads == 0 && (rows / heads) % 2 == 0,
                  "{}: tensor '{}' [{} rows] does not split into {} heads of even size", src, g.name, rows, heads);
      head_dim = rows / heads;
    }
    auto buf = std::shared_ptr<std::byte[]>(new std::byte[size_t(rows) * dst_row]);
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      // GGUF row (h, 2i + j) holds HF row (h, j * D/2 + i).
      int64_t out = r;
      if (heads) {
        const int64_t h = r / head_dim, k = r % head_dim;
        out = h * head_dim + (k % 2) * (head_dim / 2) + k / 2;
      }
      const std::byte* in = g.data + size_t(r) * src_row;
      if (t.dtype == native && native_dtype(g.type, &native)) {
        std::memcpy(buf.get() + size_t(out) * dst_row, in, dst_row);
      } else {
        dequantize_row(g.type, in, row.data(), cols);
        store(t.dtype, row.data(), buf.get() + size_t(out) * dst_row, cols);
      }
    }
    t.nbytes = size_t(rows) * dst_row;
    t.data = buf.get();
    ck.owners_.push_back(buf);
    infos->push_back(std::move(t));
  }
  for (const TensorInfo& t : *infos) {
    const auto [it, fresh] = ck.tensors_.emplace(t.name, &t);
    SSPAN_CHECK(fresh, "{}: two tensors map to '{}'", src, t.name);
  }
  ck.owners_.push_back(infos);
  return ck;
}

}  // namespace sspan
