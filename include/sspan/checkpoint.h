#pragma once
// safetensors files (memory mapped, validated as the reference implementation does) and
// model directories holding one file or a sharded set with model.safetensors.index.json.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sspan/dtype.h"
#include "sspan/error.h"  // the functions below throw sspan::Error

namespace sspan {
namespace io {
class MappedFile;
}

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t offset = 0;   // from the start of the data section
  size_t nbytes = 0;
  // Into the mapped file; alignment is whatever the file gives (writers that pad the
  // header to 8 bytes keep F32 data 4-byte aligned, but nothing guarantees it).
  const std::byte* data = nullptr;
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;             // in data-offset order
  std::map<std::string, std::string> metadata; // __metadata__
  size_t data_start = 0;                       // 8 + header length
};

// Validate a whole safetensors byte image (header + data). `source` names the file in
// errors. Pure function over bytes: the fuzz target calls it directly.
SafetensorsHeader parse_safetensors(std::span<const std::byte> file, std::string_view source);

class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  std::unique_ptr<io::MappedFile> map_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;
};

// A checkpoint directory, looked up in this order:
//  1. model.safetensors.index.json + the shards its weight_map names (bare file names in
//     the directory; every mapped tensor must be in its shard, and a shard may hold no
//     tensor the map does not list: index and shards must agree);
//  2. model.safetensors;
//  3. every other *.safetensors file, tensor names unique across them.
// Pickle checkpoints (*.bin, *.pth, *.pt) are refused with a message to convert them.
// open() also takes a single .safetensors file: that file alone.
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& dir);
  // The tensors of a GGUF LLaMA file under their Hugging Face names and layout. F32, F16
  // and BF16 tensors are used from the mapping; quantized ones (Q8_0, Q4_0, Q4_1) are
  // dequantized to `dtype` into memory the checkpoint owns; other types are refused.
  static Checkpoint open_gguf(const std::filesystem::path& file, DType dtype);

  const std::filesystem::path& dir() const { return dir_; }
  // The tensor, or nullptr. Data stays valid while this Checkpoint (or a copy) lives.
  const TensorInfo* find(std::string_view name) const;
  // The tensor; throws naming the tensor and the directory when it is missing.
  const TensorInfo& get(std::string_view name) const;
  std::vector<std::string> tensor_names() const;
  size_t total_bytes() const;
  size_t num_files() const { return files_.size(); }

 private:
  std::filesystem::path dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::vector<std::shared_ptr<const void>> owners_;  // GGUF mapping, dequantized tensors
  std::map<std::string, const TensorInfo*, std::less<>> tensors_;
};

}  // namespace sspan
