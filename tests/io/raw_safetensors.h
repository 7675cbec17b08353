#pragma once
// Byte-level helpers for loader tests: build safetensors images from a header text and
// a data blob, so that a test can state exactly which rule a file breaks.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <string>

#include "sspan/checkpoint.h"
#include "sspan/error.h"
#include "support/expect_error.h"

namespace sspan::test {

// 8-byte little-endian length, then `header`, then `data`.
inline std::string raw_safetensors(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

inline std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}


inline std::string parse_error(const std::string& bytes, std::string_view source = "t.safetensors") {
  return error_of([&] { parse_safetensors(as_bytes(bytes), source); });
}

}  // namespace sspan::test
