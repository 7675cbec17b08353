#include "io/model_files.h"

#include <system_error>

#include "common/check.h"

namespace sspan {
namespace fs = std::filesystem;

ModelFiles open_model_files(const fs::path& model, const fs::path& tokenizer_file, DType dequant_dtype) {
  std::error_code ec;
  SSPAN_CHECK(fs::exists(model, ec), "model path '{}' does not exist", model.string());
  auto tokenizer = [&](const fs::path& dir) {
    return tokenizer_file.empty() ? Tokenizer::for_model_dir(dir) : Tokenizer::load(tokenizer_file);
  };
  if (fs::is_directory(model, ec))
    return {ModelConfig::from_file(model / "config.json"), Checkpoint::open(model), tokenizer(model)};
  const std::string ext = model.extension().string();
  if (ext == ".gguf")
    return {ModelConfig::from_gguf(model), Checkpoint::open_gguf(model, dequant_dtype),
            tokenizer_file.empty() ? Tokenizer::load(model) : Tokenizer::load(tokenizer_file)};
  if (ext == ".safetensors") {
    const fs::path dir = model.parent_path().empty() ? fs::path(".") : model.parent_path();
    return {ModelConfig::from_file(dir / "config.json"), Checkpoint::open(model), tokenizer(dir)};
  }
  SSPAN_FAIL("model path '{}' is neither a directory, a .gguf file nor a .safetensors file", model.string());
}

}  // namespace sspan
