// GGUF parsing. A Reader walks the header with every read bounds-checked; counts are
// checked against the bytes left before anything is reserved, so a hostile count cannot
// make us allocate more than the file could describe.
#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/check.h"
#include "io/json_strict.h"
#include "io/mapped_file.h"

namespace sspan {
namespace {

struct TypeTraits {
  GgmlType type;
  std::string_view name;
  uint32_t block;  // elements per block
  uint32_t bytes;  // bytes per block
};
constexpr TypeTraits kTypes[] = {
    {GgmlType::F32, "F32", 1, 4},          {GgmlType::F16, "F16", 1, 2},        {GgmlType::Q4_0, "Q4_0", 32, 18},
    {GgmlType::Q4_1, "Q4_1", 32, 20},      {GgmlType::Q5_0, "Q5_0", 32, 22},    {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},      {GgmlType::Q8_1, "Q8_1", 32, 36},    {GgmlType::Q2_K, "Q2_K", 256, 84},
    {GgmlType::Q3_K, "Q3_K", 256, 110},    {GgmlType::Q4_K, "Q4_K", 256, 144},  {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},    {GgmlType::Q8_K, "Q8_K", 256, 292},  {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66},
    {GgmlType::IQ2_XS, "IQ2_XS", 256, 74}, {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98}, {GgmlType::IQ1_S, "IQ1_S", 256, 50},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18},  {GgmlType::IQ3_S, "IQ3_S", 256, 110}, {GgmlType::IQ2_S, "IQ2_S", 256, 82},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136}, {GgmlType::I8, "I8", 1, 1},         {GgmlType::I16, "I16", 1, 2},
    {GgmlType::I32, "I32", 1, 4},          {GgmlType::I64, "I64", 1, 8},        {GgmlType::F64, "F64", 1, 8},
    {GgmlType::IQ1_M, "IQ1_M", 256, 56},   {GgmlType::BF16, "BF16", 1, 2},      {GgmlType::TQ1_0, "TQ1_0", 256, 54},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66},
};

const TypeTraits* traits(uint32_t t) {
  for (const auto& x : kTypes)
    if (uint32_t(x.type) == t) return &x;
  return nullptr;
}

constexpr uint64_t kMaxStringBytes = uint64_t(1) << 30;  // no key, name or token is a GB
constexpr int kMaxArrayDepth = 4;

class Reader {
 public:
  Reader(std::span<const std::byte> b, std::string_view src) : b_(b), src_(src) {}
  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }

  template <class T>
  T read(const char* what) {
    SSPAN_CHECK(left() >= sizeof(T), "{}: truncated at byte {} reading {}", src_, pos_, what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    SSPAN_CHECK(n <= left() && n <= kMaxStringBytes, "{}: {} at byte {} claims {} bytes but {} remain", src_, what,
                pos_ - 8, n, left());
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  // A count of items each at least `min_bytes` long, checked against the bytes left.
  uint64_t count(const char* what, uint64_t min_bytes) {
    const uint64_t n = read<uint64_t>(what);
    SSPAN_CHECK(min_bytes == 0 || n <= left() / min_bytes, "{}: {} = {} cannot fit in the {} bytes left", src_, what, n,
                left());
    return n;
  }
  std::string_view src() const { return src_; }

 private:
  std::span<const std::byte> b_;
  std::string_view src_;
  size_t pos_ = 0;
};

using VT = GgufValue::Type;

size_t scalar_size(VT t) {
  switch (t) {
    case VT::U8: case VT::I8: case VT::Bool: return 1;
    case VT::U16: case VT::I16: return 2;
    case VT::U32: case VT::I32: case VT::F32: return 4;
    case VT::U64: case VT::I64: case VT::F64: return 8;
    case VT::String: return 8;  // at least its length
    case VT::Array: return 12;  // at least element type + count
  }
  return 0;
}

VT read_value_type(Reader& r, const std::string& key) {
  const uint32_t t = r.read<uint32_t>("a value type");
  SSPAN_CHECK(t <= uint32_t(VT::F64), "{}: metadata '{}' has unknown value type {}", r.src(), key, t);
  return VT(t);
}

// A scalar of type t into v (integer and number both set for numeric types).
void read_scalar(Reader& r, VT t, const std::string& key, GgufValue& v) {
  switch (t) {
    case VT::U8: v.integer = r.read<uint8_t>("a u8"); break;
    case VT::I8: v.integer = r.read<int8_t>("an i8"); break;
    case VT::U16: v.integer = r.read<uint16_t>("a u16"); break;
    case VT::I16: v.integer = r.read<int16_t>("an i16"); break;
    case VT::U32: v.integer = r.read<uint32_t>("a u32"); break;
    case VT::I32: v.integer = r.read<int32_t>("an i32"); break;
    case VT::I64: v.integer = r.read<int64_t>("an i64"); break;
    case VT::U64: {
      const uint64_t u = r.read<uint64_t>("a u64");
      SSPAN_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()), "{}: metadata '{}' = {} is out of range",
                  r.src(), key, u);
      v.integer = int64_t(u);
      break;
    }
    case VT::Bool: {
      const uint8_t b = r.read<uint8_t>("a bool");
      SSPAN_CHECK(b <= 1, "{}: metadata '{}' is a bool of value {}", r.src(), key, b);
      v.integer = b;
      break;
    }
    case VT::F32: v.number = r.read<float>("an f32"); return;
    case VT::F64: v.number = r.read<double>("an f64"); return;
    case VT::String: v.text = r.string("a string value"); return;
    case VT::Array: SSPAN_FAIL("{}: metadata '{}': internal error, array read as a scalar", r.src(), key);
  }
  v.number = double(v.integer);
}

void read_array(Reader& r, const std::string& key, GgufValue& v, int depth) {
  SSPAN_CHECK(depth < kMaxArrayDepth, "{}: metadata '{}' nests arrays deeper than {}", r.src(), key, kMaxArrayDepth);
  v.element = read_value_type(r, key);
  v.count = r.count("an array length", scalar_size(v.element));
  const bool keep = depth == 0;
  if (keep && v.element == VT::String) v.strings.reserve(size_t(v.count));
  else if (keep && v.element != VT::Array) v.numbers.reserve(size_t(v.count));
  for (uint64_t i = 0; i < v.count; ++i) {
    GgufValue e;
    e.type = v.element;
    if (v.element == VT::Array) {
      read_array(r, key, e, depth + 1);
      continue;
    }
    read_scalar(r, v.element, key, e);
    if (!keep) continue;
    if (v.element == VT::String) v.strings.push_back(std::move(e.text));
    else v.numbers.push_back(e.number);
  }
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

}  // namespace

std::string_view ggml_type_name(GgmlType t) {
  const TypeTraits* x = traits(uint32_t(t));
  return x ? x->name : "unknown";
}

bool GgufValue::is_integer() const {
  return type != Type::F32 && type != Type::F64 && type != Type::String && type != Type::Array;
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

const GgufValue* GgufHeader::find(std::string_view key) const {
  const auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

bool looks_like_gguf(std::span<const std::byte> head) {
  return head.size() >= 4 && std::memcmp(head.data(), "GGUF", 4) == 0;
}

GgufHeader parse_gguf(std::span<const std::byte> file, std::string_view src) {
  Reader r(file, src);
  SSPAN_CHECK(looks_like_gguf(file), "{}: not a GGUF file (no \"GGUF\" magic)", src);
  r.read<uint32_t>("the magic");
  GgufHeader h;
  h.version = r.read<uint32_t>("the version");
  SSPAN_CHECK(h.version == 2 || h.version == 3, "{}: GGUF version {} is not supported (versions 2 and 3)", src,
              h.version);
  // Each tensor description takes at least 8 (name) + 4 + 8 (one dim) + 4 + 8 bytes, each
  // key/value at least 8 (key) + 4 + 1.
  const uint64_t n_tensors = r.read<uint64_t>("the tensor count");
  const uint64_t n_kv = r.count("the metadata count", 13);
  SSPAN_CHECK(n_tensors <= r.left() / 32, "{}: tensor count {} cannot fit in the file", src, n_tensors);

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.string("a metadata key");
    SSPAN_CHECK(!key.empty() && io::find_invalid_utf8(key) == std::string::npos,
                "{}: metadata key {} is empty or not UTF-8", src, i);
    GgufValue v;
    v.type = read_value_type(r, key);
    if (v.type == VT::Array) read_array(r, key, v, 0);
    else read_scalar(r, v.type, key, v);
    const auto [it, fresh] = h.metadata.emplace(key, std::move(v));
    SSPAN_CHECK(fresh, "{}: metadata key '{}' appears twice", src, it->first);
  }
  if (const GgufValue* a = h.find("general.alignment")) {
    SSPAN_CHECK(a->type == VT::U32 && a->integer > 0 && (a->integer & (a->integer - 1)) == 0 && a->integer <= 1 << 20,
                "{}: general.alignment must be a u32 power of two, got {}", src, a->integer);
    h.alignment = size_t(a->integer);
  }

  std::map<std::string, size_t, std::less<>> names;
  h.tensors.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = r.string("a tensor name");
    SSPAN_CHECK(!t.name.empty() && io::find_invalid_utf8(t.name) == std::string::npos,
                "{}: tensor {} has an empty or non-UTF-8 name", src, i);
    SSPAN_CHECK(names.emplace(t.name, i).second, "{}: tensor '{}' appears twice", src, t.name);
    const uint32_t n_dims = r.read<uint32_t>("a dimension count");
    SSPAN_CHECK(n_dims >= 1 && n_dims <= 4, "{}: tensor '{}' has {} dimensions (1 to 4 allowed)", src, t.name, n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = r.read<uint64_t>("a dimension");
      SSPAN_CHECK(ne >= 1 && ne <= uint64_t(1) << 40 && checked_mul(numel, ne, &numel) && numel <= uint64_t(1) << 40,
                  "{}: tensor '{}' has dimension {} = {} (each >= 1, at most 2^40 elements in all)", src, t.name, d, ne);
      t.ne.push_back(int64_t(ne));
    }
    const uint32_t type = r.read<uint32_t>("a tensor type");
    const TypeTraits* tt = traits(type);
    SSPAN_CHECK(tt, "{}: tensor '{}' has unknown ggml type {}", src, t.name, type);
    t.type = tt->type;
    SSPAN_CHECK(uint64_t(t.ne[0]) % tt->block == 0, "{}: tensor '{}' of type {}: row length {} is not a multiple of {}",
                src, t.name, tt->name, t.ne[0], tt->block);
    t.nbytes = size_t(numel / tt->block * tt->bytes);  // numel <= 2^40, bytes <= 292: no overflow
    t.offset = r.read<uint64_t>("a tensor offset");
    SSPAN_CHECK(t.offset % h.alignment == 0, "{}: tensor '{}' offset {} is not a multiple of the alignment {}", src,
                t.name, t.offset, h.alignment);
    h.tensors.push_back(std::move(t));
  }
  const size_t header_end = r.pos();
  h.data_start = (header_end + h.alignment - 1) / h.alignment * h.alignment;
  SSPAN_CHECK(h.data_start <= file.size(), "{}: the data section would start at byte {} but the file has {}", src,
              h.data_start, file.size());
  const uint64_t data_bytes = file.size() - h.data_start;

  // Every tensor inside the data section, none overlapping another.
  std::vector<const GgufTensor*> by_offset;
  for (const auto& t : h.tensors) {
    SSPAN_CHECK(t.offset <= data_bytes && t.nbytes <= data_bytes - t.offset,
                "{}: tensor '{}' data [{}, {}) lies outside the {} bytes of the data section", src, t.name, t.offset,
                t.offset + t.nbytes, data_bytes);
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    SSPAN_CHECK(by_offset[i - 1]->offset + by_offset[i - 1]->nbytes <= by_offset[i]->offset,
                "{}: tensors '{}' and '{}' overlap", src, by_offset[i - 1]->name, by_offset[i]->name);
  for (auto& t : h.tensors) t.data = file.data() + h.data_start + t.offset;
  return h;
}

std::shared_ptr<const GgufFile> GgufFile::open(const std::filesystem::path& path) {
  std::shared_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->map_ = std::make_unique<io::MappedFile>(path);
  f->header_ = parse_gguf(f->map_->bytes(), path.string());
  return f;
}

GgufFile::~GgufFile() = default;

const GgufTensor* GgufFile::find(std::string_view name) const {
  for (const auto& t : header_.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

int64_t GgufFile::integer(std::string_view key) const {
  const GgufValue* v = get(key);
  SSPAN_CHECK(v, "{}: missing metadata '{}'", path_.string(), key);
  SSPAN_CHECK(v->is_integer(), "{}: metadata '{}' must be an integer", path_.string(), key);
  return v->integer;
}
int64_t GgufFile::integer(std::string_view key, int64_t fallback) const { return get(key) ? integer(key) : fallback; }

double GgufFile::number(std::string_view key, double fallback) const {
  const GgufValue* v = get(key);
  if (!v) return fallback;
  SSPAN_CHECK(v->type != VT::String && v->type != VT::Array, "{}: metadata '{}' must be a number", path_.string(), key);
  return v->number;
}

std::string GgufFile::text(std::string_view key, std::string fallback) const {
  const GgufValue* v = get(key);
  if (!v) return fallback;
  SSPAN_CHECK(v->type == VT::String, "{}: metadata '{}' must be a string", path_.string(), key);
  return v->text;
}

bool GgufFile::boolean(std::string_view key, bool fallback) const {
  const GgufValue* v = get(key);
  if (!v) return fallback;
  SSPAN_CHECK(v->type == VT::Bool, "{}: metadata '{}' must be a bool", path_.string(), key);
  return v->integer != 0;
}

const std::vector<std::string>& GgufFile::strings(std::string_view key) const {
  const GgufValue* v = get(key);
  SSPAN_CHECK(v, "{}: missing metadata '{}'", path_.string(), key);
  SSPAN_CHECK(v->type == VT::Array && v->element == VT::String, "{}: metadata '{}' must be an array of strings",
              path_.string(), key);
  return v->strings;
}

const std::vector<double>* GgufFile::numbers(std::string_view key) const {
  const GgufValue* v = get(key);
  if (!v) return nullptr;
  SSPAN_CHECK(v->type == VT::Array && v->element != VT::String && v->element != VT::Array,
              "{}: metadata '{}' must be an array of numbers", path_.string(), key);
  return &v->numbers;
}

}  // namespace sspan
