#include "generate/batch_file.h"

#include "common/check.h"
#include "io/json_strict.h"

namespace sspan::tools {

std::vector<std::string> parse_batch_jsonl(std::string_view text, std::string_view source) {
  std::vector<std::string> prompts;
  size_t line_no = 0;
  for (size_t begin = 0; begin < text.size();) {
    const size_t end = std::min(text.find('\n', begin), text.size());
    const std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = fmt::format("{}:{}", source, line_no);
    const nlohmann::json j = io::parse_json_strict(line, where);
    if (j.is_string()) {
      prompts.push_back(j.get<std::string>());
      continue;
    }
    const auto prompt = j.is_object() ? j.find("prompt") : j.end();
    SSPAN_CHECK(j.is_object() && prompt != j.end() && prompt->is_string(),
                "{}: expected {{\"prompt\": \"...\"}} or a JSON string, got {}", where, io::json_summary(j));
    prompts.push_back(prompt->get<std::string>());
  }
  SSPAN_CHECK(!prompts.empty(), "batch file '{}' holds no prompts", source);
  return prompts;
}

}  // namespace sspan::tools
