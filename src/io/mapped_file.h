#pragma once
// A whole regular file mapped read-only into memory (nothing mapped for an empty file).
#include <cstddef>
#include <filesystem>
#include <span>

namespace sspan::io {

class MappedFile {
 public:
  // Throws sspan::Error naming the file when it cannot be opened, is not a regular file
  // or cannot be mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(map_), size_}; }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sspan::io
