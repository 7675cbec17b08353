#pragma once
// The lines of a text, split at '\n' (no trailing empty line), for the dataset tests.
#include <sstream>
#include <string>
#include <vector>

namespace sspan::data {

inline std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace sspan::data
