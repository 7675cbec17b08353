#pragma once
// Text input of the command-line tools: a file or standard input ("-"), read whole up to a
// bound, and checked to be UTF-8 before any work is done.
#include <string>

namespace sspan::tools {

// The bytes of `path` ("-": standard input). Reading stops at a limit far above any
// context, so `-f /dev/zero` is an error rather than a process that eats all memory.
// `what` names the input in errors ("prompt file", "text file").
std::string read_text(const std::string& path, const char* what);

// `text` itself when it is valid UTF-8; else an error naming the input and the offset.
std::string checked_utf8(std::string text, const char* what, const std::string& path);

std::string read_utf8_text(const std::string& path, const char* what);

}  // namespace sspan::tools
