#include "common/text_input.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "io/json_strict.h"
#include "sspan/error.h"

namespace sspan::tools {

namespace {

// Standard input and FIFOs are fine (`-f <(cmd)`), but not without end.
constexpr size_t kMaxInputBytes = size_t(256) << 20;

std::string read_stream(std::istream& in, const std::string& path, const char* what) {
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, size_t(in.gcount()));
    if (text.size() > kMaxInputBytes)
      throw Error(fmt::format("{} '{}' is larger than {} MB", what, path, kMaxInputBytes >> 20));
  }
  if (in.bad()) throw Error(fmt::format("reading {} '{}' failed", what, path));
  return text;
}

}  // namespace

std::string read_text(const std::string& path, const char* what) {
  if (path == "-") return read_stream(std::cin, path, what);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(fmt::format("cannot read {} '{}'", what, path));
  return read_stream(f, path, what);
}

// Prompts and texts are UTF-8: refuse other bytes, naming the file and the offset, rather
// than tokenize bytes the model never saw as text.
std::string checked_utf8(std::string text, const char* what, const std::string& path) {
  const size_t bad = io::find_invalid_utf8(text);
  if (bad != std::string::npos) throw Error(fmt::format("{} '{}' is not valid UTF-8 (byte {})", what, path, bad));
  return text;
}

std::string read_utf8_text(const std::string& path, const char* what) {
  return checked_utf8(read_text(path, what), what, path);
}

}  // namespace sspan::tools
