#pragma once
// Writers of safetensors files and of random LLaMA checkpoints in the Hugging Face layout
// (config.json + model.safetensors, or sharded with model.safetensors.index.json). Tests,
// benchmarks and the README's first run use them; `sspan-random-model` is the CLI.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sspan/dtype.h"

namespace sspan {

struct TinyLlamaSpec {
  int vocab_size = 96;
  int hidden_size = 64;
  int intermediate_size = 160;
  int num_layers = 2;
  int num_heads = 4;
  int num_kv_heads = 4;   // < num_heads for GQA
  int head_dim = 0;       // 0: hidden / heads
  int max_position_embeddings = 512;
  bool tie_word_embeddings = false;
  DType dtype = DType::F32;
  int shards = 1;         // > 1 writes model-0000k-of-0000n.safetensors + index
  uint64_t seed = 1;
  float init_scale = 0.08f;  // weights ~ U(-s, s); norms ~ 1 + U(-0.1, 0.1)
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  int bos_token_id = 1;
  int eos_token_id = 2;
};

// A tensor to write: fp32 values converted to `dtype` on write.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Write one safetensors file (tensors laid out in the given order).
void write_safetensors(const std::filesystem::path& file, const std::vector<TensorSpec>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The tensors of a random LLaMA, HF names, deterministic in spec.seed.
std::vector<TensorSpec> tiny_llama_tensors(const TinyLlamaSpec& spec);

// Write config.json + weights into dir (created). Returns dir.
std::filesystem::path write_tiny_llama(const std::filesystem::path& dir, const TinyLlamaSpec& spec);

// The config.json text for spec.
std::string tiny_llama_config_json(const TinyLlamaSpec& spec);

}  // namespace sspan
