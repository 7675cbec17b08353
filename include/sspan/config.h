#pragma once
// config.json of a Hugging Face LlamaForCausalLM checkpoint, validated.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "sspan/dtype.h"
#include "sspan/error.h"  // the functions below throw sspan::Error

namespace sspan {

struct RopeScaling {
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  double factor = 1.0;                        // linear and llama3
  double low_freq_factor = 1.0;               // llama3
  double high_freq_factor = 4.0;              // llama3
  int original_max_position_embeddings = 8192;  // llama3
  // Per-frequency divisors (a GGUF's rope_freqs tensor: LLaMA 3 scaling precomputed);
  // empty: none. Applied after `type`.
  std::vector<float> freq_factors;
};

struct ModelConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // defaults to num_attention_heads
  int head_dim = 0;             // defaults to hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int max_position_embeddings = 2048;
  int vocab_size = 0;
  bool tie_word_embeddings = false;
  int bos_token_id = 1;
  std::vector<int> eos_token_ids;  // config may give one id or a list
  DType torch_dtype = DType::F32;

  // Parse and validate; `source` names the file in error messages. Refuses what the
  // engine cannot run (another architecture, biases, unknown rope type) saying what.
  static ModelConfig from_json(std::string_view json_text, std::string_view source);
  static ModelConfig from_file(const std::filesystem::path& path);
  // The llama.* metadata of a GGUF file (and its rope_freqs tensor).
  static ModelConfig from_gguf(const std::filesystem::path& path);

  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t num_parameters() const;  // including embeddings and lm_head
};

// Inverse RoPE frequencies [head_dim / 2] after rope_scaling, as HF computes them.
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace sspan
