#include "io/model_files.h"

#include <system_error>

#include "common/check.h"

namespace sspan {
namespace fs = std::filesystem;

namespace {

enum class ModelKind { Directory, Gguf, Safetensors };

ModelKind model_kind(const fs::path& model) {
  std::error_code ec;
  SSPAN_CHECK(fs::exists(model, ec), "model path '{}' does not exist", model.string());
  if (fs::is_directory(model, ec)) return ModelKind::Directory;
  const std::string ext = model.extension().string();
  if (ext == ".gguf") return ModelKind::Gguf;
  if (ext == ".safetensors") return ModelKind::Safetensors;
  SSPAN_FAIL("model path '{}' is neither a directory, a .gguf file nor a .safetensors file", model.string());
}

// The directory holding config.json and the tokenizer of a non-GGUF model path.
fs::path model_dir(const fs::path& model, ModelKind kind) {
  if (kind == ModelKind::Directory) return model;
  return model.parent_path().empty() ? fs::path(".") : model.parent_path();
}

}  // namespace

ModelMeta open_model_meta(const fs::path& model, const fs::path& tokenizer_file) {
  const ModelKind kind = model_kind(model);
  if (kind == ModelKind::Gguf)
    return {ModelConfig::from_gguf(model), Tokenizer::load(tokenizer_file.empty() ? model : tokenizer_file), model};
  const fs::path dir = model_dir(model, kind);
  return {ModelConfig::from_file(dir / "config.json"),
          tokenizer_file.empty() ? Tokenizer::for_model_dir(dir) : Tokenizer::load(tokenizer_file),
          dir / "config.json"};
}

ModelFiles open_model_files(const fs::path& model, const fs::path& tokenizer_file, DType dequant_dtype) {
  const ModelKind kind = model_kind(model);
  ModelMeta meta = open_model_meta(model, tokenizer_file);
  Checkpoint ckpt = kind == ModelKind::Gguf ? Checkpoint::open_gguf(model, dequant_dtype) : Checkpoint::open(model);
  return {std::move(meta.config), std::move(ckpt), std::move(meta.tokenizer), std::move(meta.config_file)};
}

}  // namespace sspan
