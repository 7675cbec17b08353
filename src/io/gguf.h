#pragma once
// GGUF files (llama.cpp's format, versions 2 and 3): metadata key/values, tensor
// descriptions and the aligned data section, validated as strictly as safetensors
// (every size, offset and count checked against the file, with overflow checks).
//
// Layout: "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv x {string key, u32 type,
// value} | n_tensors x {string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset}
// | padding to `general.alignment` (32) | data. Strings are u64 length + bytes.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sspan {
namespace io {
class MappedFile;
}

// The ggml tensor types this reader knows the size of.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35,
};
std::string_view ggml_type_name(GgmlType t);

// One metadata value. Scalars: `integer` (all integer types and bool), `number` (floats,
// and integers converted), `text`. Arrays: element type, count, and the elements when
// they are strings or numbers (nested arrays are validated and skipped).
struct GgufValue {
  enum class Type : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
    U64 = 10, I64 = 11, F64 = 12,
  };
  Type type = Type::U8;
  Type element = Type::U8;  // arrays
  int64_t integer = 0;
  double number = 0.0;
  std::string text;
  uint64_t count = 0;                // arrays
  std::vector<std::string> strings;  // arrays of strings
  std::vector<double> numbers;       // arrays of numbers (integers exact up to 2^53)
  bool is_integer() const;
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous (row) dimension
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;      // from the start of the data section
  size_t nbytes = 0;
  const std::byte* data = nullptr;
  int64_t numel() const;
};

struct GgufHeader {
  uint32_t version = 0;
  std::map<std::string, GgufValue, std::less<>> metadata;
  std::vector<GgufTensor> tensors;  // in file order
  size_t alignment = 32;
  size_t data_start = 0;
  const GgufValue* find(std::string_view key) const;
};

// Validate a whole GGUF byte image; `source` names the file in errors. Pure function
// over bytes: the fuzz target calls it directly.
GgufHeader parse_gguf(std::span<const std::byte> file, std::string_view source);

// Whether these bytes start like a GGUF file.
bool looks_like_gguf(std::span<const std::byte> head);

class GgufFile {
 public:
  static std::shared_ptr<const GgufFile> open(const std::filesystem::path& path);
  ~GgufFile();
  const std::filesystem::path& path() const { return path_; }
  const GgufHeader& header() const { return header_; }
  const GgufTensor* find(std::string_view name) const;

  // Typed metadata access; errors name the file and the key.
  const GgufValue* get(std::string_view key) const { return header_.find(key); }
  int64_t integer(std::string_view key) const;
  int64_t integer(std::string_view key, int64_t fallback) const;
  double number(std::string_view key, double fallback) const;
  std::string text(std::string_view key, std::string fallback) const;
  bool boolean(std::string_view key, bool fallback) const;
  const std::vector<std::string>& strings(std::string_view key) const;  // required string array
  const std::vector<double>* numbers(std::string_view key) const;       // optional number array

 private:
  GgufFile() = default;
  std::filesystem::path path_;
  std::unique_ptr<io::MappedFile> map_;
  GgufHeader header_;
};

}  // namespace sspan
