#pragma once
// The `summary` task of the paper (Figure 7, Appendix A): an article as numbered
// sentence lines after an instruction, and a summary whose sentences start with the
// range of article lines they come from. Format and input are documented in
// docs/datasets.md.
#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace sspan::data {

// The instruction line (Appendix A wording).
inline constexpr std::string_view kSummaryInstruction =
    "Summarize the following article in three sentences and precede it with the range of "
    "line numbers for each summarized sentence in the parenthese.";

// Sentences of an article: split after '.', '!' or '?' followed by whitespace, and at
// line breaks; surrounding whitespace trimmed, empty pieces dropped.
std::vector<std::string> split_sentences(std::string_view article);

struct SummaryRecord {
  std::string prompt;      // instruction line + "k : sentence" lines, each ending in '\n'
  std::string completion;  // "(a-b) sentence" lines joined by '\n'
};

// `summary_lines` each start with a reference list "(a-b)", "(a)" or "(0-2,5)" naming
// article sentence numbers. Throws sspan::Error naming `what` and the faulty line.
SummaryRecord summary_record(std::string_view article, const std::vector<std::string>& summary_lines,
                             std::string_view what);

// Reads {article, summary} JSONL (summary: a string of lines or an array of lines) and
// writes {prompt, completion} JSONL. `source` names the input in error messages.
void convert_summaries(std::istream& in, std::string_view source, std::ostream& out);

}  // namespace sspan::data
