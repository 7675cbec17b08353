#include "support/tool_run.h"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>

#include "support/test_paths.h"

namespace sspan::test {

ToolRun run_command(const std::string& command, const std::string& stdin_text) {
  const auto dir = scratch_dir("run");
  const auto in = dir / "stdin", out = dir / "stdout", err = dir / "stderr";
  std::ofstream(in) << stdin_text;
  const std::string cmd = command + " <" + in.string() + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out), slurp(err)};
}

}  // namespace sspan::test
