// Span grammars: the two built-ins of the paper and user grammars read from JSON
// (format: docs/grammars.md).
#include "common/check.h"
#include "io/json_strict.h"
#include "io/untrusted_files.h"
#include "sspan/span.h"

namespace sspan {
namespace {

using nlohmann::json;

constexpr size_t kMaxGrammarBytes = 1 << 20;  // a grammar is a few hundred bytes

const char* place_name(SpanGrammar::AnchorPlace p) {
  return p == SpanGrammar::AnchorPlace::LineEnd ? "line_end" : "line_start";
}

// The object at `key` of `obj`, with no keys other than `allowed` (a typo in a grammar
// file must not silently change the rule).
const json& object_at(const json& obj, const char* key, std::initializer_list<const char*> allowed,
                      std::string_view source) {
  SSPAN_CHECK(obj.contains(key), "span grammar {}: missing key \"{}\"", source, key);
  const json& sub = obj.at(key);
  SSPAN_CHECK(sub.is_object(), "span grammar {}: \"{}\" must be an object", source, key);
  for (const auto& [k, v] : sub.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || k == a;
    SSPAN_CHECK(known, "span grammar {}: unknown key \"{}.{}\"", source, key, k);
  }
  return sub;
}

std::string string_at(const json& obj, const char* parent, const char* key, std::string_view source) {
  SSPAN_CHECK(obj.contains(key), "span grammar {}: missing key \"{}.{}\"", source, parent, key);
  const json& v = obj.at(key);
  SSPAN_CHECK(v.is_string(), "span grammar {}: \"{}.{}\" must be a string", source, parent, key);
  return v.get<std::string>();
}

bool bool_at(const json& obj, const char* parent, const char* key, std::string_view source) {
  SSPAN_CHECK(obj.contains(key), "span grammar {}: missing key \"{}{}{}\"", source, parent,
              *parent ? "." : "", key);
  const json& v = obj.at(key);
  SSPAN_CHECK(v.is_boolean(), "span grammar {}: \"{}{}{}\" must be true or false", source, parent,
              *parent ? "." : "", key);
  return v.get<bool>();
}

// Delimiters may not contain digits, spaces or newlines: ids are digit runs, spaces are
// skipped around them, and a newline ends the line.
void check_delimiter(const std::string& d, bool may_be_empty, const char* what,
                     std::string_view source) {
  SSPAN_CHECK(may_be_empty || !d.empty(), "span grammar {}: \"{}\" must not be empty", source, what);
  for (char c : d)
    SSPAN_CHECK(!(c >= '0' && c <= '9') && c != ' ' && c != '\n' && c != '\r',
                "span grammar {}: \"{}\" = \"{}\" must not contain digits, spaces or newlines",
                source, what, d);
}

}  // namespace

SpanGrammar SpanGrammar::builtin(std::string_view name) {
  if (name == "arith")
    return SpanGrammar{.name = "arith",
                       .anchor_place = AnchorPlace::LineEnd,
                       .anchor_open = "[",
                       .anchor_close = "]",
                       .list_open = "[",
                       .list_close = "]",
                       .list_sep = ",",
                       .range_sep = "",
                       .relative_refs = true,
                       .implicit_prev_ref_line = false};
  if (name == "summary")
    return SpanGrammar{.name = "summary",
                       .anchor_place = AnchorPlace::LineStart,
                       .anchor_open = "",
                       .anchor_close = ":",
                       .list_open = "(",
                       .list_close = ")",
                       .list_sep = ",",
                       .range_sep = "-",
                       .relative_refs = false,
                       .implicit_prev_ref_line = true};
  SSPAN_FAIL("unknown span grammar \"{}\" (built-ins: arith, summary; or a JSON grammar file)", name);
}

SpanGrammar SpanGrammar::from_json(std::string_view json_text, std::string_view source) {
  const json doc = io::parse_json_strict(json_text, fmt::format("span grammar {}", source));
  SSPAN_CHECK(doc.is_object(), "span grammar {}: the top level must be an object", source);
  for (const auto& [k, v] : doc.items())
    SSPAN_CHECK(k == "name" || k == "anchor" || k == "reference_list" ||
                    k == "implicit_previous_list_line",
                "span grammar {}: unknown key \"{}\"", source, k);

  SpanGrammar g;
  SSPAN_CHECK(doc.contains("name") && doc["name"].is_string() &&
                  !doc["name"].get<std::string>().empty(),
              "span grammar {}: \"name\" must be a non-empty string", source);
  g.name = doc["name"].get<std::string>();

  const json& anchor = object_at(doc, "anchor", {"place", "open", "close"}, source);
  const std::string place = string_at(anchor, "anchor", "place", source);
  if (place == "line_end") {
    g.anchor_place = AnchorPlace::LineEnd;
  } else if (place == "line_start") {
    g.anchor_place = AnchorPlace::LineStart;
  } else {
    SSPAN_FAIL("span grammar {}: \"anchor.place\" is \"{}\"; expected \"line_end\" or \"line_start\"",
               source, place);
  }
  g.anchor_open = string_at(anchor, "anchor", "open", source);
  g.anchor_close = string_at(anchor, "anchor", "close", source);
  // A line-end anchor is found by its opening delimiter; a line-start one by its close.
  check_delimiter(g.anchor_open, g.anchor_place == AnchorPlace::LineStart, "anchor.open", source);
  check_delimiter(g.anchor_close, false, "anchor.close", source);

  const json& list = object_at(doc, "reference_list",
                               {"open", "close", "separator", "range", "relative_previous"}, source);
  g.list_open = string_at(list, "reference_list", "open", source);
  g.list_close = string_at(list, "reference_list", "close", source);
  g.list_sep = string_at(list, "reference_list", "separator", source);
  g.range_sep = string_at(list, "reference_list", "range", source);
  g.relative_refs = bool_at(list, "reference_list", "relative_previous", source);
  check_delimiter(g.list_open, false, "reference_list.open", source);
  check_delimiter(g.list_close, false, "reference_list.close", source);
  check_delimiter(g.list_sep, false, "reference_list.separator", source);
  check_delimiter(g.range_sep, true, "reference_list.range", source);
  SSPAN_CHECK(g.range_sep != g.list_sep,
              "span grammar {}: \"reference_list.range\" and \"reference_list.separator\" are both "
              "\"{}\"",
              source, g.list_sep);

  g.implicit_prev_ref_line = bool_at(doc, "", "implicit_previous_list_line", source);
  return g;
}

SpanGrammar SpanGrammar::from_file(const std::filesystem::path& path) {
  return from_json(io::read_regular_file(path, kMaxGrammarBytes, "span grammar file"), path.string());
}

std::string SpanGrammar::to_json() const {
  json doc = {
      {"name", name},
      {"anchor", {{"place", place_name(anchor_place)}, {"open", anchor_open}, {"close", anchor_close}}},
      {"reference_list",
       {{"open", list_open},
        {"close", list_close},
        {"separator", list_sep},
        {"range", range_sep},
        {"relative_previous", relative_refs}}},
      {"implicit_previous_list_line", implicit_prev_ref_line},
  };
  return doc.dump(2);
}

}  // namespace sspan
