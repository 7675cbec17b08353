#pragma once
// A command-line tool run as a user runs it, for the tools' tests.
#include <string>

namespace sspan::test {

struct ToolRun {
  int code = 0;  // exit status; 128 + the signal when one killed it
  std::string out, err;
};

// `command` through the shell, standard input holding `stdin_text`, the two output
// streams captured whole.
ToolRun run_command(const std::string& command, const std::string& stdin_text = "");

}  // namespace sspan::test
