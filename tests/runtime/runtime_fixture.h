#pragma once
// The shipped arith-tiny model (its own tokenizer, 300 ids, 4 layers): a real trained
// model that runs in milliseconds, so the runtime tests need nothing outside the clone.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sspan/engine.h"
#include "sspan/scheduler.h"
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

// A request sampled hot (the tiny model is confident) under `policy`, ignoring EOS.
inline Request sampled(const std::string& prompt, uint64_t seed, int max_tokens, const std::string& policy = "arith") {
  Request r;
  r.prompt = prompt;
  r.options.max_new_tokens = max_tokens;
  r.options.sampling = {.temperature = 2.5f, .top_k = 50, .seed = seed};
  r.options.span.policy = policy;
  r.options.stop_at_eos = false;
  return r;
}

// The result of `r` run by a scheduler of its own on `e`, with nothing else in the batch.
inline GenerationResult run_alone(Engine& e, Request r) {
  Scheduler s(e);
  auto h = s.submit(std::move(r));
  s.run_until_idle();
  return h.wait();
}

}  // namespace sspan::test
