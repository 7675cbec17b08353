#pragma once
// A GGUF writer for tests: metadata and tensors in, the file's bytes out, so that a test
// can build a valid model or break exactly one rule.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace sspan::test {

class GgufBuilder {
 public:
  enum Type : uint32_t { U8 = 0, I32 = 5, U32 = 4, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10 };

  GgufBuilder& u32(const std::string& k, uint32_t v) { return kv(k, U32, pod(v)); }
  GgufBuilder& f32(const std::string& k, float v) { return kv(k, F32, pod(v)); }
  GgufBuilder& boolean(const std::string& k, bool v) { return kv(k, Bool, std::string(1, char(v))); }
  GgufBuilder& str(const std::string& k, const std::string& v) { return kv(k, String, string(v)); }
  GgufBuilder& strings(const std::string& k, const std::vector<std::string>& v) {
    std::string b = pod(uint32_t(String)) + pod(uint64_t(v.size()));
    for (const auto& s : v) b += string(s);
    return kv(k, Array, b);
  }
  GgufBuilder& f32s(const std::string& k, const std::vector<float>& v) {
    std::string b = pod(uint32_t(F32)) + pod(uint64_t(v.size()));
    for (float x : v) b += pod(x);
    return kv(k, Array, b);
  }
  GgufBuilder& i32s(const std::string& k, const std::vector<int32_t>& v) {
    std::string b = pod(uint32_t(I32)) + pod(uint64_t(v.size()));
    for (int32_t x : v) b += pod(x);
    return kv(k, Array, b);
  }
  // A tensor: ggml dims (ne[0] contiguous), ggml type, raw data bytes.
  GgufBuilder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::string data) {
    tensors_.push_back({name, std::move(ne), type, std::move(data)});
    return *this;
  }

  std::string bytes(uint32_t version = 3, size_t alignment = 32) const {
    std::string out = "GGUF" + pod(version) + pod(uint64_t(tensors_.size())) + pod(uint64_t(n_kv_)) + kvs_;
    uint64_t offset = 0;
    std::string data;
    for (const auto& t : tensors_) {
      out += string(t.name) + pod(uint32_t(t.ne.size()));
      for (uint64_t d : t.ne) out += pod(d);
      out += pod(t.type) + pod(offset);
      data += t.data;
      while (data.size() % alignment) data.push_back('\0');
      offset = data.size();
    }
    while (out.size() % alignment) out.push_back('\0');
    return out + data;
  }

  static std::string string(const std::string& s) { return pod(uint64_t(s.size())) + s; }
  template <class T>
  static std::string pod(T v) {
    std::string b(sizeof(T), '\0');
    std::memcpy(b.data(), &v, sizeof(T));
    return b;
  }

 private:
  GgufBuilder& kv(const std::string& k, uint32_t type, const std::string& value) {
    kvs_ += string(k) + pod(type) + value;
    ++n_kv_;
    return *this;
  }
  struct T {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
  };
  std::string kvs_;
  size_t n_kv_ = 0;
  std::vector<T> tensors_;
};

}  // namespace sspan::test
