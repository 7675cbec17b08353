// A model directory: model.safetensors.index.json + shards, model.safetensors, or a set
// of other *.safetensors files. Pickle checkpoints are refused: unpickling runs code.
#include <algorithm>
#include <set>

#include "common/check.h"
#include "io/untrusted_files.h"
#include "io/shard_index.h"
#include "sspan/checkpoint.h"

namespace sspan {
namespace fs = std::filesystem;
namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

constexpr size_t kMaxIndexBytes = size_t(64) << 20;  // a 400B-parameter model's index is ~1 MB

std::vector<fs::path> files_with_ext(const fs::path& dir, std::initializer_list<std::string_view> exts) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string ext = e.path().extension().string();
    if (std::find(exts.begin(), exts.end(), ext) != exts.end()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir) {
  std::error_code ec;
  SSPAN_CHECK(fs::exists(dir, ec), "checkpoint directory '{}' does not exist", dir.string());
  Checkpoint ck;
  ck.dir_ = dir;
  // Every weights file is opened through here: the link rule first (io/untrusted_files.h).
  auto open_file = [&](const fs::path& path) {
    io::check_inside_model_dir(dir, path);
    ck.files_.push_back(SafetensorsFile::open(path));
    return ck.files_.back();
  };
  auto add_file_tensors = [&](const std::shared_ptr<SafetensorsFile>& f) {
    for (const auto& t : f->tensors()) {
      const auto [it, fresh] = ck.tensors_.emplace(t.name, &t);
      SSPAN_CHECK(fresh, "{}: tensor '{}' is also in another safetensors file of the directory",
                  f->path().string(), t.name);
    }
  };
  if (fs::is_regular_file(dir, ec) && dir.extension() == ".safetensors") {  // one file, on its own
    ck.files_.push_back(SafetensorsFile::open(dir));
    add_file_tensors(ck.files_.back());
    return ck;
  }
  SSPAN_CHECK(fs::is_directory(dir, ec), "checkpoint path '{}' is neither a directory nor a .safetensors file",
              dir.string());

  if (fs::exists(dir / kIndexName, ec)) {
    const fs::path index_path = dir / kIndexName;
    const std::string index = index_path.string();
    io::check_inside_model_dir(dir, index_path);
    const auto weight_map =
        io::parse_shard_index(io::read_regular_file(index_path, kMaxIndexBytes, "shard index"), index);

    std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;  // each opened once
    std::map<std::string, std::set<std::string>> listed;             // shard -> tensors
    for (const auto& [tensor, shard] : weight_map) {
      auto& file = shards[shard];
      if (!file) {
        SSPAN_CHECK(fs::is_regular_file(dir / shard, ec), "{}: tensor '{}' maps to shard '{}', which does not exist",
                    index, tensor, shard);
        file = open_file(dir / shard);
      }
      const TensorInfo* t = file->find(tensor);
      SSPAN_CHECK(t, "{}: tensor '{}' is mapped to shard '{}' but that shard does not hold it", index, tensor, shard);
      ck.tensors_.emplace(tensor, t);
      listed[shard].insert(tensor);
    }
    // A shard holding tensors the index does not list means the index and the shards
    // disagree (a stale index, or shards of another export): refuse rather than guess
    // which side is right.
    for (const auto& [shard, file] : shards)
      for (const auto& t : file->tensors())
        SSPAN_CHECK(listed[shard].count(t.name), "{}: shard '{}' holds tensor '{}' that the weight_map does not list",
                    index, shard, t.name);
    return ck;
  }

  if (fs::is_regular_file(dir / kSingleName, ec)) {
    add_file_tensors(open_file(dir / kSingleName));
    return ck;
  }

  const auto safetensors = files_with_ext(dir, {".safetensors"});
  for (const auto& p : safetensors) add_file_tensors(open_file(p));
  if (!safetensors.empty()) return ck;

  const auto pickles = files_with_ext(dir, {".bin", ".pth", ".pt"});
  SSPAN_CHECK(pickles.empty(),
              "{}: only PyTorch pickle weights found ({}); sspan reads safetensors only, because loading a pickle "
              "can run arbitrary code. Convert once with: python -c \"from transformers import "
              "AutoModelForCausalLM as M; M.from_pretrained('{}').save_pretrained('OUT_DIR', "
              "safe_serialization=True)\" and copy the tokenizer files along",
              dir.string(), pickles.front().filename().string(), dir.string());
  SSPAN_FAIL("{}: no weights found (expected {} or {} with its shards)", dir.string(), kSingleName, kIndexName);
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(std::string_view name) const {
  const TensorInfo* t = find(name);
  SSPAN_CHECK(t, "{}: checkpoint has no tensor '{}'", dir_.string(), name);
  return *t;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, _] : tensors_) names.push_back(name);
  return names;
}

size_t Checkpoint::total_bytes() const {
  size_t n = 0;
  for (const auto& [_, t] : tensors_) n += t->nbytes;
  return n;
}

}  // namespace sspan
