#include "summary.h"

#include <cctype>
#include <string>

#include <nlohmann/json.hpp>

#include "common/check.h"

namespace sspan::data {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// Parses the leading "(a-b,c)" list; returns the largest id named, or throws.
int check_reference_list(std::string_view line, std::string_view what) {
  SSPAN_CHECK(!line.empty() && line[0] == '(', "{}: summary line '{}' does not start with '('",
              what, line);
  const size_t close = line.find(')');
  SSPAN_CHECK(close != std::string_view::npos, "{}: summary line '{}' has no ')'", what, line);
  const std::string body(line.substr(1, close - 1));
  SSPAN_CHECK(!body.empty(), "{}: summary line '{}' has an empty reference list", what, line);
  int max_id = -1;
  size_t pos = 0;
  auto read_id = [&]() {
    const size_t start = pos;
    while (pos < body.size() && std::isdigit(static_cast<unsigned char>(body[pos]))) ++pos;
    SSPAN_CHECK(pos > start && pos - start <= 9, "{}: bad line number in '{}'", what, line);
    return std::stoi(body.substr(start, pos - start));
  };
  for (bool first = true; pos < body.size(); first = false) {
    if (!first) {
      SSPAN_CHECK(body[pos] == ',', "{}: expected ',' in reference list of '{}'", what, line);
      ++pos;
      while (pos < body.size() && body[pos] == ' ') ++pos;
    }
    const int a = read_id();
    int b = a;
    if (pos < body.size() && body[pos] == '-') {
      ++pos;
      b = read_id();
      SSPAN_CHECK(a <= b, "{}: range {}-{} runs backwards in '{}'", what, a, b, line);
    }
    max_id = std::max(max_id, b);
  }
  return max_id;
}

}  // namespace

std::vector<std::string> split_sentences(std::string_view article) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < article.size(); ++i) {
    const char c = article[i];
    const bool end_mark = (c == '.' || c == '!' || c == '?') &&
                          (i + 1 == article.size() || is_space(article[i + 1]));
    if (c == '\n' || end_mark) {
      std::string s = trim(article.substr(start, i + 1 - start));
      if (!s.empty()) out.push_back(std::move(s));
      start = i + 1;
    }
  }
  std::string tail = trim(article.substr(start));
  if (!tail.empty()) out.push_back(std::move(tail));
  return out;
}

SummaryRecord summary_record(std::string_view article, const std::vector<std::string>& summary_lines,
                             std::string_view what) {
  const std::vector<std::string> sentences = split_sentences(article);
  SSPAN_CHECK(!sentences.empty(), "{}: the article has no sentences", what);
  SSPAN_CHECK(!summary_lines.empty(), "{}: the summary has no lines", what);
  SummaryRecord r;
  r.prompt = std::string(kSummaryInstruction) + "\n";
  for (size_t k = 0; k < sentences.size(); ++k)
    r.prompt += std::to_string(k) + " : " + sentences[k] + "\n";
  for (size_t i = 0; i < summary_lines.size(); ++i) {
    const std::string line = trim(summary_lines[i]);
    const int max_id = check_reference_list(line, what);
    SSPAN_CHECK(max_id < int(sentences.size()),
                "{}: summary line '{}' names line {} but the article has {} sentences", what,
                line, max_id, sentences.size());
    r.completion += (i ? "\n" : "") + line;
  }
  return r;
}

void convert_summaries(std::istream& in, std::string_view source, std::ostream& out) {
  std::string text;
  for (int64_t line_no = 1; std::getline(in, text); ++line_no) {
    if (trim(text).empty()) continue;
    const std::string what = fmt::format("{} line {}", source, line_no);
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    SSPAN_CHECK(!j.is_discarded() && j.is_object(), "{}: not a JSON object", what);
    SSPAN_CHECK(j.contains("article") && j["article"].is_string(), "{}: missing string 'article'", what);
    SSPAN_CHECK(j.contains("summary"), "{}: missing 'summary'", what);
    std::vector<std::string> lines;
    const nlohmann::json& s = j["summary"];
    if (s.is_string()) {
      const std::string all = s.get<std::string>();
      for (size_t b = 0, e; b <= all.size(); b = e + 1) {
        e = std::min(all.find('\n', b), all.size());
        if (!trim(std::string_view(all).substr(b, e - b)).empty()) lines.push_back(all.substr(b, e - b));
      }
    } else {
      SSPAN_CHECK(s.is_array(), "{}: 'summary' must be a string or an array of strings", what);
      for (const auto& l : s) {
        SSPAN_CHECK(l.is_string(), "{}: 'summary' array holds a non-string", what);
        lines.push_back(l.get<std::string>());
      }
    }
    const SummaryRecord r = summary_record(j["article"].get<std::string>(), lines, what);
    nlohmann::ordered_json o;
    o["prompt"] = r.prompt;
    o["completion"] = r.completion;
    out << o.dump() << '\n';
  }
  SSPAN_CHECK(in.eof(), "reading '{}' failed", source);
}

}  // namespace sspan::data
