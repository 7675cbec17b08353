#pragma once
// One solution step of the arith trace (docs/datasets.md, "The trace"): the text both
// prompt layouts write for an operation, including the split forms of long products and
// quotients.
#include <cstdint>
#include <string>
#include <vector>

namespace sspan::data {

std::string number_text(int64_t v);

// The lines of the step solving `a op b = v` whose reference list is `refs`:
//   "REFS a op b=v [anchor]"                          one line
//   "REFS <split>", "[-1] So a op b=v [anchor]"       a multi-digit product or quotient
// The last step of a trace folds the operation into its value and carries no anchor:
//   "REFS v", or "REFS <split>", "[-1] v".
// anchor < 0 writes no anchor (a result no later step names by id).
std::vector<std::string> step_lines(const std::string& refs, char op, int64_t a, int64_t b, int64_t v,
                                    bool last, int anchor);

}  // namespace sspan::data
