// Grammars: the built-ins equal their JSON forms; bad grammar files are clear errors.
#include <gtest/gtest.h>

#include <fstream>

#include "sspan/error.h"
#include "sspan/span.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

TEST(SpanGrammar, BuiltinsEqualTheirJsonFiles) {
  for (const char* name : {"arith", "summary"}) {
    const auto file = test::source_dir() / "examples" / "grammars" / (std::string(name) + ".json");
    EXPECT_EQ(SpanGrammar::from_file(file), SpanGrammar::builtin(name)) << name;
    const auto g = SpanGrammar::builtin(name);
    EXPECT_EQ(SpanGrammar::from_json(g.to_json(), "to_json"), g) << name;
  }
  EXPECT_NE(SpanGrammar::builtin("arith"), SpanGrammar::builtin("summary"));
}

TEST(SpanGrammar, UnknownBuiltinIsAnError) {
  try {
    SpanGrammar::builtin("poetry");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("poetry"), std::string::npos) << e.what();
  }
}

// Each broken grammar gives an error whose message contains `needle`.
TEST(SpanGrammar, InvalidJsonGrammarsGiveClearErrors) {
  const std::string good = SpanGrammar::builtin("summary").to_json();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{ not json", "invalid JSON"},
      {"[1, 2]", "top level"},
      {with("\"name\": \"summary\"", "\"name\": \"\""), "\"name\""},
      {with("\"place\": \"line_start\"", "\"place\": \"middle\""), "anchor.place"},
      {with("\"close\": \")\"", "\"close\": \"\""), "reference_list.close"},
      {with("\"separator\": \",\"", "\"separator\": \"1\""), "reference_list.separator"},
      {with("\"range\": \"-\"", "\"range\": \",\""), "reference_list.range"},
      {with("\"open\": \"(\"", "\"open\": 5"), "reference_list.open"},
      {with("\"relative_previous\": false", "\"relative_previous\": \"no\""),
       "reference_list.relative_previous"},
      {with("\"implicit_previous_list_line\": true", "\"implicit_previous_list_line\": true, \"extra\": 1"),
       "\"extra\""},
      {with("\"relative_previous\": false", "\"relative_previous\": false, \"sep\": \",\""),
       "reference_list.sep"},
      {with("\"implicit_previous_list_line\": true", "\"x\": true"), "unknown key \"x\""},
      {with("\"implicit_previous_list_line\": true,", ""), "missing key \"implicit_previous_list_line\""},
  };
  for (const auto& [text, needle] : cases) {
    try {
      SpanGrammar::from_json(text, "bad.json");
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << msg;
    }
  }
}

TEST(SpanGrammar, LineEndAnchorNeedsAnOpeningDelimiter) {
  auto g = SpanGrammar::builtin("arith");
  g.anchor_open = "";
  EXPECT_THROW(SpanGrammar::from_json(g.to_json(), "x.json"), Error);
}

TEST(SpanGrammar, MissingFileIsAnError) {
  const auto dir = test::scratch_dir("grammar");
  try {
    SpanGrammar::from_file(dir / "absent.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.json"), std::string::npos) << e.what();
  }
}

// A user grammar: anchors "<k>" at line end, lists "{a..b; c}" at line start.
TEST(SpanGrammar, UserGrammarDrivesTheRule) {
  const std::string text = R"({
    "name": "braces",
    "anchor": {"place": "line_end", "open": "<", "close": ">"},
    "reference_list": {"open": "{", "close": "}", "separator": ";", "range": "..",
                       "relative_previous": false},
    "implicit_previous_list_line": false
  })";
  auto g = std::make_shared<const SpanGrammar>(SpanGrammar::from_json(text, "braces.json"));
  SpanState state(g);
  state.push("", true);
  state.push("a <0>\n", true);   // 1, line 0
  state.push("b <1>\n", true);   // 2, line 1
  state.push("c <2>\n", true);   // 3, line 2
  state.push("{0..1; 1}", false);  // 4, line 3
  state.push(" d", false);         // 5
  EXPECT_TRUE(state.last_sparse());
  EXPECT_EQ(state.last_attended(), (std::vector<PosRange>{{0, 3}, {4, 6}}));
}

}  // namespace
}  // namespace sspan
