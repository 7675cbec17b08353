// A model directory: model.safetensors.index.json + shards, model.safetensors, or a set
// of other *.safetensors files. Pickle checkpoints are refused: unpickling runs code.
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "common/check.h"
#include "io/json_strict.h"
#include "sspan/checkpoint.h"

namespace sspan {
namespace fs = std::filesystem;
namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  SSPAN_CHECK(f, "{}: cannot open", path.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  SSPAN_CHECK(!f.bad(), "{}: read error", path.string());
  return ss.str();
}

// Shards must be plain files beside the index: no directories, no way out of the model
// directory. A hostile index could otherwise map /etc/passwd or ../other-model.
void check_shard_name(const std::string& shard, const std::string& tensor, const std::string& index) {
  SSPAN_CHECK(!shard.empty(), "{}: tensor '{}' maps to an empty shard name", index, tensor);
  const bool bare = shard.find('/') == std::string::npos && shard.find('\\') == std::string::npos &&
                    shard != "." && shard != ".." && shard.find('\0') == std::string::npos;
  SSPAN_CHECK(bare, "{}: tensor '{}' maps to shard '{}', which is not a plain file name in the model directory",
              index, tensor, shard);
}

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
    const std::string index = (dir / kIndexName).string();
    const auto j = io::parse_json_strict(read_text(dir / kIndexName), index);
    SSPAN_CHECK(j.is_object(), "{}: not a JSON object", index);
    const auto wm = j.find("weight_map");
    SSPAN_CHECK(wm != j.end() && wm->is_object(), "{}: missing \"weight_map\" object", index);
    SSPAN_CHECK(!wm->empty(), "{}: \"weight_map\" lists no tensors", index);

    std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;  // each opened once
    std::map<std::string, std::set<std::string>> listed;             // shard -> tensors
    for (const auto& [tensor, shard_json] : wm->items()) {
      SSPAN_CHECK(shard_json.is_string(), "{}: tensor '{}': shard is not a string", index, tensor);
      const auto& shard = shard_json.get_ref<const std::string&>();
      check_shard_name(shard, tensor, index);
      auto& file = shards[shard];
      if (!file) {
        SSPAN_CHECK(fs::is_regular_file(dir / shard, ec), "{}: tensor '{}' maps to shard '{}', which does not exist",
                    index, tensor, shard);
        file = SafetensorsFile::open(dir / shard);
        ck.files_.push_back(file);
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
    ck.files_.push_back(SafetensorsFile::open(dir / kSingleName));
    add_file_tensors(ck.files_.back());
    return ck;
  }

  const auto safetensors = files_with_ext(dir, {".safetensors"});
  for (const auto& p : safetensors) {
    ck.files_.push_back(SafetensorsFile::open(p));
    add_file_tensors(ck.files_.back());
  }
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
