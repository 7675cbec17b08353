#include "sspan/checkpoint_writer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include "sspan/error.h"

namespace sspan {
namespace {

void append_values(std::string& out, DType dtype, const std::vector<float>& values) {
  for (float v : values) {
    if (dtype == DType::F32) {
      out.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      uint16_t h = dtype == DType::F16 ? float_to_half(v) : float_to_bf16(v);
      out.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
}

std::vector<float> uniform(std::mt19937_64& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

void write_safetensors(const std::filesystem::path& file, const std::vector<TensorSpec>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    if (int64_t(t.values.size()) != numel) throw Error("tensor " + t.name + ": value count");
    const size_t begin = data.size();
    append_values(data, t.dtype, t.values);
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // align data to 8 bytes, as HF does
  const uint64_t n = h.size();
  std::ofstream f(file, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(h.data(), std::streamsize(h.size()));
  f.write(data.data(), std::streamsize(data.size()));
  if (!f) throw Error("cannot write " + file.string());
}

std::vector<TensorSpec> tiny_llama_tensors(const TinyLlamaSpec& s) {
  std::mt19937_64 rng(s.seed);
  const int64_t H = s.hidden_size, I = s.intermediate_size, V = s.vocab_size;
  const int64_t D = s.head_dim ? s.head_dim : H / s.num_heads;
  const int64_t q = s.num_heads * D, kv = s.num_kv_heads * D;
  const float a = s.init_scale;
  std::vector<TensorSpec> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool norm) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    auto v = norm ? uniform(rng, size_t(n), 0.9f, 1.1f) : uniform(rng, size_t(n), -a, a);
    out.push_back({std::move(name), s.dtype, std::move(shape), std::move(v)});
  };
  add("model.embed_tokens.weight", {V, H}, false);
  for (int l = 0; l < s.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, true);
    add(p + "self_attn.q_proj.weight", {q, H}, false);
    add(p + "self_attn.k_proj.weight", {kv, H}, false);
    add(p + "self_attn.v_proj.weight", {kv, H}, false);
    add(p + "self_attn.o_proj.weight", {H, q}, false);
    add(p + "post_attention_layernorm.weight", {H}, true);
    add(p + "mlp.gate_proj.weight", {I, H}, false);
    add(p + "mlp.up_proj.weight", {I, H}, false);
    add(p + "mlp.down_proj.weight", {H, I}, false);
  }
  add("model.norm.weight", {H}, true);
  if (!s.tie_word_embeddings) add("lm_head.weight", {V, H}, false);
  return out;
}

std::string tiny_llama_config_json(const TinyLlamaSpec& s) {
  nlohmann::ordered_json c;
  c["architectures"] = {"LlamaForCausalLM"};
  c["model_type"] = "llama";
  c["hidden_size"] = s.hidden_size;
  c["intermediate_size"] = s.intermediate_size;
  c["num_hidden_layers"] = s.num_layers;
  c["num_attention_heads"] = s.num_heads;
  c["num_key_value_heads"] = s.num_kv_heads;
  if (s.head_dim) c["head_dim"] = s.head_dim;
  c["max_position_embeddings"] = s.max_position_embeddings;
  c["vocab_size"] = s.vocab_size;
  c["rms_norm_eps"] = s.rms_norm_eps;
  c["rope_theta"] = s.rope_theta;
  c["tie_word_embeddings"] = s.tie_word_embeddings;
  c["bos_token_id"] = s.bos_token_id;
  c["eos_token_id"] = s.eos_token_id;
  c["hidden_act"] = "silu";
  c["attention_bias"] = false;
  c["mlp_bias"] = false;
  c["torch_dtype"] = s.dtype == DType::F32 ? "float32" : s.dtype == DType::F16 ? "float16" : "bfloat16";
  return c.dump(2);
}

std::filesystem::path write_tiny_llama(const std::filesystem::path& dir, const TinyLlamaSpec& s) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "config.json");
    f << tiny_llama_config_json(s);
  }
  auto tensors = tiny_llama_tensors(s);
  if (s.shards <= 1) {
    write_safetensors(dir / "model.safetensors", tensors);
    return dir;
  }
  // Split tensors round-robin by order into `shards` files and write the index.
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", 0}};
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::vector<std::vector<TensorSpec>> parts(size_t(s.shards));
  for (size_t i = 0; i < tensors.size(); ++i) parts[i * size_t(s.shards) / tensors.size()].push_back(tensors[i]);
  for (int k = 0; k < s.shards; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    write_safetensors(dir / name, parts[size_t(k)]);
    for (const auto& t : parts[size_t(k)]) weight_map[t.name] = name;
  }
  index["weight_map"] = weight_map;
  std::ofstream f(dir / "model.safetensors.index.json");
  f << index.dump(2);
  return dir;
}

}  // namespace sspan
