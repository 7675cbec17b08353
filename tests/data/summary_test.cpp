// The summary converter: sentence split, Figure 7 layout, and errors naming the record.
#include <gtest/gtest.h>

#include <sstream>

#include "sspan/error.h"
#include "summary.h"

namespace sspan::data {
namespace {

TEST(Summary, SplitsAfterEndMarksAndLineBreaks) {
  const auto s = split_sentences("  The cat sat. It was 3.5 m long!\nNo mark here\n\nWhy? Yes.");
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0], "The cat sat.");
  EXPECT_EQ(s[1], "It was 3.5 m long!");
  EXPECT_EQ(s[2], "No mark here");
  EXPECT_EQ(s[3], "Why?");
  EXPECT_EQ(s[4], "Yes.");
}

TEST(Summary, BuildsTheFigure7Layout) {
  const SummaryRecord r = summary_record("A fox ran. It hid. Night fell.",
                                         {"(0-1) A fox ran and hid.", " (2) Night came. "}, "t");
  EXPECT_EQ(r.prompt, std::string(kSummaryInstruction) + "\n0 : A fox ran.\n1 : It hid.\n2 : Night fell.\n");
  EXPECT_EQ(r.completion, "(0-1) A fox ran and hid.\n(2) Night came.");
}

TEST(Summary, ConvertsJsonlWithStringOrArraySummaries) {
  std::istringstream in(
      R"({"article": "One. Two.", "summary": "(0) First.\n(1) Second."})"
      "\n\n"
      R"({"article": "One. Two.", "summary": ["(0-1,0) Both."]})"
      "\n");
  std::ostringstream out;
  convert_summaries(in, "mem", out);
  const std::string text = out.str();
  EXPECT_NE(text.find(R"("completion":"(0) First.\n(1) Second.")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("completion":"(0-1,0) Both.")"), std::string::npos) << text;
}

TEST(Summary, BadReferencesNameTheRecord) {
  auto fails_with = [](const std::string& jsonl, const std::string& needle) {
    std::istringstream in(jsonl);
    std::ostringstream out;
    try {
      convert_summaries(in, "in.jsonl", out);
    } catch (const Error& e) {
      return std::string(e.what()).find(needle) != std::string::npos &&
             std::string(e.what()).find("in.jsonl line 1") != std::string::npos;
    }
    return false;
  };
  EXPECT_TRUE(fails_with(R"({"article": "A. B.", "summary": ["(0-5) X."]})", "names line 5"));
  EXPECT_TRUE(fails_with(R"({"article": "A. B.", "summary": ["(1-0) X."]})", "runs backwards"));
  EXPECT_TRUE(fails_with(R"({"article": "A. B.", "summary": ["No refs."]})", "does not start"));
  EXPECT_TRUE(fails_with(R"({"article": "A. B.", "summary": ["(0"]})", "has no ')'"));
  EXPECT_TRUE(fails_with(R"({"article": "A. B."})", "missing 'summary'"));
  EXPECT_TRUE(fails_with(R"({"article": 3, "summary": []})", "missing string 'article'"));
  EXPECT_TRUE(fails_with(R"(not json)", "not a JSON object"));
}

}  // namespace
}  // namespace sspan::data
