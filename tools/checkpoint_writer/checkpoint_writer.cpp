#include "checkpoint_writer/checkpoint_writer.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "sspan/error.h"

namespace sspan {
namespace {

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// One tensor of the random LLaMA: its entry and how its values are drawn.
struct RandomTensor {
  SafetensorsWriter::Entry entry;
  bool norm = false;  // ~ U(0.9, 1.1) instead of U(-s, s)
};

std::vector<RandomTensor> tiny_llama_layout(const TinyLlamaSpec& s) {
  const int64_t H = s.hidden_size, I = s.intermediate_size, V = s.vocab_size;
  const int64_t D = s.head_dim ? s.head_dim : H / s.num_heads;
  const int64_t q = s.num_heads * D, kv = s.num_kv_heads * D;
  std::vector<RandomTensor> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool norm) {
    out.push_back({{std::move(name), s.dtype, std::move(shape)}, norm});
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

// Draws the values of the layout's tensors in order, in chunks: the same sequence
// whether a tensor is drawn whole (tiny_llama_tensors) or streamed (write_tiny_llama).
class RandomValues {
 public:
  explicit RandomValues(const TinyLlamaSpec& s) : rng_(s.seed), scale_(s.init_scale) {}
  void draw(const RandomTensor& t, int64_t n, std::vector<float>& out) {
    std::uniform_real_distribution<float> d = t.norm ? std::uniform_real_distribution<float>(0.9f, 1.1f)
                                                     : std::uniform_real_distribution<float>(-scale_, scale_);
    out.resize(size_t(n));
    for (auto& x : out) x = d(rng_);
  }

 private:
  std::mt19937_64 rng_;
  float scale_;
};

void append_converted(std::string& out, DType dtype, std::span<const float> values) {
  out.clear();
  out.reserve(values.size() * dtype_size(dtype));
  for (float v : values) {
    if (dtype == DType::F32) {
      out.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      uint16_t h = dtype == DType::F16 ? float_to_half(v) : float_to_bf16(v);
      out.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& file, std::vector<Entry> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(file), out_(file, std::ios::binary | std::ios::trunc), tensors_(std::move(tensors)) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    numel_.push_back(numel_of(t.shape));
    const uint64_t end = offset + uint64_t(numel_.back()) * dtype_size(t.dtype);
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // align data to 8 bytes, as HF does
  const uint64_t n = h.size();
  out_.write(reinterpret_cast<const char*>(&n), 8);
  out_.write(h.data(), std::streamsize(h.size()));
  if (!out_) throw Error("cannot write " + path_.string());
}

void SafetensorsWriter::append(std::span<const float> values) {
  while (!values.empty()) {
    while (current_ < tensors_.size() && written_ == numel_[current_]) ++current_, written_ = 0;
    if (current_ == tensors_.size()) throw Error(path_.string() + ": more values than the tensors hold");
    const auto take = size_t(std::min<int64_t>(int64_t(values.size()), numel_[current_] - written_));
    append_converted(buffer_, tensors_[current_].dtype, values.first(take));
    out_.write(buffer_.data(), std::streamsize(buffer_.size()));
    if (!out_) throw Error("cannot write " + path_.string());
    written_ += int64_t(take);
    values = values.subspan(take);
  }
}

void SafetensorsWriter::finish() {
  while (current_ < tensors_.size() && written_ == numel_[current_]) ++current_, written_ = 0;
  if (current_ != tensors_.size())
    throw Error(path_.string() + ": tensor " + tensors_[current_].name + " is missing values");
  out_.flush();
  if (!out_) throw Error("cannot write " + path_.string());
}

void write_safetensors(const std::filesystem::path& file, const std::vector<TensorSpec>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsWriter::Entry> entries;
  for (const auto& t : tensors) {
    if (int64_t(t.values.size()) != numel_of(t.shape)) throw Error("tensor " + t.name + ": value count");
    entries.push_back({t.name, t.dtype, t.shape});
  }
  SafetensorsWriter w(file, std::move(entries), metadata);
  for (const auto& t : tensors) w.append(t.values);
  w.finish();
}

std::vector<TensorSpec> tiny_llama_tensors(const TinyLlamaSpec& s) {
  RandomValues values(s);
  std::vector<TensorSpec> out;
  for (const auto& t : tiny_llama_layout(s)) {
    TensorSpec spec{t.entry.name, t.entry.dtype, t.entry.shape, {}};
    values.draw(t, numel_of(t.entry.shape), spec.values);
    out.push_back(std::move(spec));
  }
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
    if (!f) throw Error("cannot write " + (dir / "config.json").string());
  }
  // Tensors in layout order, split into `shards` consecutive runs; drawing them in that
  // order keeps the values those of tiny_llama_tensors.
  const auto layout = tiny_llama_layout(s);
  const int shards = std::max(1, s.shards);
  std::vector<std::vector<size_t>> parts(static_cast<size_t>(shards));
  for (size_t i = 0; i < layout.size(); ++i) parts[i * size_t(shards) / layout.size()].push_back(i);
  RandomValues values(s);
  std::vector<float> chunk;
  constexpr int64_t kChunk = int64_t(1) << 20;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (int k = 0; k < shards; ++k) {
    char name[64];
    if (shards == 1) {
      std::snprintf(name, sizeof name, "model.safetensors");
    } else {
      std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, shards);
    }
    std::vector<SafetensorsWriter::Entry> entries;
    for (size_t i : parts[size_t(k)]) entries.push_back(layout[i].entry);
    SafetensorsWriter w(dir / name, std::move(entries));
    for (size_t i : parts[size_t(k)]) {
      const int64_t n = numel_of(layout[i].entry.shape);
      for (int64_t done = 0; done < n; done += kChunk) {
        values.draw(layout[i], std::min(kChunk, n - done), chunk);
        w.append(chunk);
      }
      weight_map[layout[i].entry.name] = name;
    }
    w.finish();
  }
  if (shards > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", 0}};
    index["weight_map"] = weight_map;
    std::ofstream f(dir / "model.safetensors.index.json");
    f << index.dump(2);
    if (!f) throw Error("cannot write " + (dir / "model.safetensors.index.json").string());
  }
  return dir;
}

}  // namespace sspan
