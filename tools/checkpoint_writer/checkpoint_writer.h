#pragma once
// Writers of safetensors files and of random LLaMA checkpoints in the Hugging Face layout
// (config.json + model.safetensors, or sharded with model.safetensors.index.json), for
// tests, benchmarks and `sspan-random-model`. Not part of the library's API.
//
// Files are streamed: the header is written from names, types and shapes, then each
// tensor's values chunk by chunk, so a LLaMA-7B-shape checkpoint (13.5 GB in fp16)
// never has to fit in memory.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
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

// One safetensors file written as a stream: the constructor writes the header for
// `tensors` (in that order, values not needed), then append() takes each tensor's
// values in order and in as many pieces as the caller likes; finish() checks that every
// value arrived and flushes.
class SafetensorsWriter {
 public:
  struct Entry {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
  };
  SafetensorsWriter(const std::filesystem::path& file, std::vector<Entry> tensors,
                    const std::map<std::string, std::string>& metadata = {});
  void append(std::span<const float> values);
  void finish();

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  std::vector<Entry> tensors_;
  std::vector<int64_t> numel_;
  size_t current_ = 0;     // tensor being written
  int64_t written_ = 0;    // values of it written so far
  std::string buffer_;     // converted bytes of one append
};

// Write one safetensors file (tensors laid out in the given order).
void write_safetensors(const std::filesystem::path& file, const std::vector<TensorSpec>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The tensors of a random LLaMA, HF names, deterministic in spec.seed; the values are
// those write_tiny_llama writes.
std::vector<TensorSpec> tiny_llama_tensors(const TinyLlamaSpec& spec);

// Write config.json + weights into dir (created), streaming the weights. Returns dir.
std::filesystem::path write_tiny_llama(const std::filesystem::path& dir, const TinyLlamaSpec& spec);

// The config.json text for spec.
std::string tiny_llama_config_json(const TinyLlamaSpec& spec);

}  // namespace sspan
