#pragma once
// The `lines` layout of the arith task (docs/datasets.md, "Layouts").
#include <string>

#include "expr.h"

namespace sspan::data {

// The prompt and trace of a left chain (((a op b) op c) ...) written one operation per
// prompt line. Throws sspan::Error naming the expression when it is not a left chain.
void write_lines_layout(const Expr& e, std::string& prompt, std::string& completion);

}  // namespace sspan::data
