#pragma once
// What a model path (`-m`) holds: a Hugging Face directory (config.json, safetensors,
// tokenizer.model or tokenizer.json), one .safetensors file with config.json and the
// tokenizer beside it, or a GGUF file (hyper-parameters, weights and tokenizer in one).
#include <filesystem>

#include "sspan/checkpoint.h"
#include "sspan/config.h"
#include "sspan/tokenizer.h"

namespace sspan {

struct ModelFiles {
  ModelConfig config;
  Checkpoint checkpoint;
  Tokenizer tokenizer;
  std::filesystem::path config_file;  // where the hyper-parameters came from: config.json or the .gguf
};

// The hyper-parameters and the tokenizer alone (no weights are mapped or dequantized):
// what a tool needs to prepare its inputs before it builds an Engine.
struct ModelMeta {
  ModelConfig config;
  Tokenizer tokenizer;
  std::filesystem::path config_file;  // config.json or the .gguf
};
ModelMeta open_model_meta(const std::filesystem::path& model, const std::filesystem::path& tokenizer_file);

// `tokenizer_file` (may be empty) replaces the tokenizer the model path would give.
// `dequant_dtype`: what quantized GGUF weights become (the backend's weight dtype).
ModelFiles open_model_files(const std::filesystem::path& model, const std::filesystem::path& tokenizer_file,
                            DType dequant_dtype);

}  // namespace sspan
