// safetensors: an 8-byte little-endian header length N, N bytes of JSON header, then the
// data section. Validation follows the reference implementation: every byte of the data
// section belongs to exactly one tensor, in offset order, and nothing follows the last.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>

#include "common/check.h"
#include "io/json_strict.h"
#include "io/mapped_file.h"
#include "sspan/checkpoint.h"

namespace sspan {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as the reference implementation

// Element types of the safetensors format that we recognise but do not read.
constexpr std::array<std::string_view, 16> kUnsupportedDtypes = {
    "BOOL", "U8",  "I8",  "I16",     "U16",     "I32",    "U32",   "I64",
    "U64",  "F64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"};

using json = nlohmann::json;

std::string shape_str(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// A JSON number that is a non-negative integer fitting in `max`; false otherwise.
bool as_size(const json& v, uint64_t max, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;  // negatives are number_integer, 1.0 is float
  const uint64_t x = v.get<uint64_t>();
  if (x > max) return false;
  *out = x;
  return true;
}

DType parse_entry_dtype(const json& entry, std::string_view src, const std::string& name) {
  const auto it = entry.find("dtype");
  SSPAN_CHECK(it != entry.end(), "{}: tensor '{}': missing \"dtype\"", src, name);
  SSPAN_CHECK(it->is_string(), "{}: tensor '{}': \"dtype\" is not a string", src, name);
  const auto& s = it->get_ref<const std::string&>();
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (std::find(kUnsupportedDtypes.begin(), kUnsupportedDtypes.end(), s) != kUnsupportedDtypes.end())
    SSPAN_FAIL("{}: tensor '{}': unsupported dtype {} (sspan reads F32, F16 and BF16)", src, name, s);
  SSPAN_FAIL("{}: tensor '{}': unknown dtype '{}'", src, name, io::brief_text(s));
}

// Shape dims are non-negative and their product stays below 2^62 elements, so that the
// byte count below cannot overflow either.
std::vector<int64_t> parse_entry_shape(const json& entry, std::string_view src, const std::string& name,
                                       uint64_t* numel) {
  const auto it = entry.find("shape");
  SSPAN_CHECK(it != entry.end(), "{}: tensor '{}': missing \"shape\"", src, name);
  SSPAN_CHECK(it->is_array(), "{}: tensor '{}': \"shape\" is not an array", src, name);
  constexpr uint64_t kMaxElems = uint64_t(1) << 62;
  std::vector<int64_t> shape;
  uint64_t n = 1;
  for (const auto& d : *it) {
    uint64_t dim = 0;
    SSPAN_CHECK(as_size(d, kMaxElems, &dim), "{}: tensor '{}': shape entry {} is not an integer in [0, 2^62)",
                src, name, io::json_summary(d));
    SSPAN_CHECK(dim == 0 || n <= kMaxElems / dim,
                "{}: tensor '{}': shape of {} dims has too many elements (overflow)", src, name, it->size());
    n *= dim;
    shape.push_back(int64_t(dim));
  }
  *numel = n;
  return shape;
}

TensorInfo parse_entry(const std::string& name, const json& entry, std::string_view src) {
  SSPAN_CHECK(entry.is_object(), "{}: tensor '{}': entry is not a JSON object", src, name);
  TensorInfo t;
  t.name = name;
  t.dtype = parse_entry_dtype(entry, src, name);
  uint64_t numel = 0;
  t.shape = parse_entry_shape(entry, src, name, &numel);

  const auto it = entry.find("data_offsets");
  SSPAN_CHECK(it != entry.end(), "{}: tensor '{}': missing \"data_offsets\"", src, name);
  uint64_t begin = 0, end = 0;
  const uint64_t kMax = std::numeric_limits<uint64_t>::max();
  SSPAN_CHECK(it->is_array() && it->size() == 2 && as_size((*it)[0], kMax, &begin) && as_size((*it)[1], kMax, &end),
              "{}: tensor '{}': \"data_offsets\" ({}) is not [begin, end] of non-negative integers", src, name,
              io::json_summary(*it));
  SSPAN_CHECK(begin <= end, "{}: tensor '{}': data_offsets [{}, {}] end before begin", src, name, begin, end);
  const uint64_t need = numel * dtype_size(t.dtype);  // numel < 2^62, size <= 4: no overflow
  SSPAN_CHECK(end - begin == need, "{}: tensor '{}': data_offsets [{}, {}] span {} bytes but shape {} of {} needs {}",
              src, name, begin, end, end - begin, shape_str(t.shape), dtype_name(t.dtype), need);
  t.offset = size_t(begin);
  t.nbytes = size_t(need);
  return t;
}

std::map<std::string, std::string> parse_metadata(const json& m, std::string_view src) {
  SSPAN_CHECK(m.is_object(), "{}: __metadata__ is not a JSON object", src);
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : m.items()) {
    SSPAN_CHECK(value.is_string(), "{}: __metadata__ value of '{}' is not a string", src, key);
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

SafetensorsHeader parse_safetensors(std::span<const std::byte> file, std::string_view src) {
  SSPAN_CHECK(file.size() >= 8, "{}: file is {} bytes, too short for the 8-byte header length", src, file.size());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint64_t(file[size_t(i)]);  // little endian
  SSPAN_CHECK(n <= kMaxHeaderBytes, "{}: header length {} exceeds the limit of {} bytes", src, n, kMaxHeaderBytes);
  SSPAN_CHECK(n <= file.size() - 8, "{}: header length {} runs past the end of the {}-byte file", src, n,
              file.size());

  const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), size_t(n));
  const json header = io::parse_json_strict(text, fmt::format("{}: header", src));
  SSPAN_CHECK(header.is_object(), "{}: header is a JSON {}, not an object", src, header.type_name());

  SafetensorsHeader out;
  out.data_start = size_t(8 + n);
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      out.metadata = parse_metadata(entry, src);
    } else {
      out.tensors.push_back(parse_entry(name, entry, src));
    }
  }

  // Offsets must tile the data section exactly: sorted by begin, each starts where the
  // previous ended, and the last ends at the end of the file. Ties on begin (empty
  // tensors) sort by end so that an empty tensor before a full one is not an overlap.
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::pair(a.offset, a.offset + a.nbytes) < std::pair(b.offset, b.offset + b.nbytes);
  });
  size_t expected = 0;
  std::string_view prev = "";
  for (const auto& t : out.tensors) {
    SSPAN_CHECK(t.offset >= expected, "{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' ending at {}", src,
                t.name, t.offset, t.offset + t.nbytes, prev, expected);
    SSPAN_CHECK(t.offset == expected, "{}: tensor '{}': data_offsets begin at {} leaving a gap after byte {}", src,
                t.name, t.offset, expected);
    expected = t.offset + t.nbytes;
    prev = t.name;
  }
  const size_t data_bytes = file.size() - out.data_start;
  SSPAN_CHECK(expected <= data_bytes, "{}: tensor data ends at byte {} of the data section but the file holds only {}",
              src, expected, data_bytes);
  SSPAN_CHECK(expected == data_bytes, "{}: {} trailing bytes after the last tensor", src, data_bytes - expected);

  for (auto& t : out.tensors) t.data = file.data() + out.data_start + t.offset;
  return out;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = std::make_unique<io::MappedFile>(path);
  f->header_ = parse_safetensors(f->map_->bytes(), path.string());
  for (size_t i = 0; i < f->header_.tensors.size(); ++i) f->index_.emplace(f->header_.tensors[i].name, i);
  return f;
}

SafetensorsFile::~SafetensorsFile() = default;

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

}  // namespace sspan
