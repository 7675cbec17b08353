#pragma once
// The shipped arith-tiny model (its own tokenizer, 300 ids, 4 layers): a real trained
// model that runs in milliseconds, so the runtime tests need nothing outside the clone.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sspan/engine.h"
#include "support/test_paths.h"

namespace sspan::test {

inline EngineOptions tiny_options(int batch = 4, int ctx = 256, int step_rows = 512) {
  EngineOptions o;
  o.model_dir = source_dir() / "models" / "arith-tiny";
  o.max_batch = batch;
  o.max_context = ctx;
  o.max_step_rows = step_rows;
  o.threads = 1;
  return o;
}

// Expressions in the training format: a prompt line that ends with its anchor.
inline std::vector<std::string> arith_prompts() {
  return {"(1 / (7 - 6)) - (2 / (9 - 3)) [0]\n", "(3 + 4) * 2 [0]\n",      "12 - (5 * 2) [0]\n",
          "((8 - 1) * (2 + 3)) + 7 [0]\n",        "9 * 9 [0]\n",            "(6 / 2) + (4 * 4) [0]\n",
          "(15 - 3) / (1 + 1) [0]\n",             "((2 * 3) * 4) - 5 [0]\n", "7 + (8 * (3 - 1)) [0]\n",
          "(44 - 4) / 8 [0]\n"};
}

}  // namespace sspan::test
