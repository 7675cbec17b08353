#pragma once
// Helpers for span tests: pushing text through a SpanState and reading back modes.
#include <string>
#include <vector>

#include "sspan/span.h"

namespace sspan::test {

// What the state said about one pushed token.
struct SpanStep {
  bool sparse = false;
  int32_t line = 0;
  std::vector<PosRange> attended;
};

// Pushes BOS (empty text, prompt) and then each token text, returning one step per
// position (BOS included). Tokens with index < n_prompt_tokens (BOS counted) are prompt.
inline std::vector<SpanStep> push_all(SpanState& state, const std::vector<std::string>& tokens,
                                      size_t n_prompt_tokens) {
  std::vector<SpanStep> steps;
  auto record = [&] {
    steps.push_back({state.last_sparse(), state.last_line(), state.last_attended()});
  };
  state.push("", true);
  record();
  for (size_t i = 0; i < tokens.size(); ++i) {
    state.push(tokens[i], i + 1 < n_prompt_tokens);
    record();
  }
  return steps;
}

// Splits text into one-byte tokens.
inline std::vector<std::string> byte_tokens(const std::string& text) {
  std::vector<std::string> out;
  for (char c : text) out.emplace_back(1, c);
  return out;
}

inline std::shared_ptr<const SpanGrammar> grammar(const char* name) {
  return std::make_shared<const SpanGrammar>(SpanGrammar::builtin(name));
}

}  // namespace sspan::test
