#pragma once
// Engine::Impl, shared by the engine (src/runtime/engine.cpp) and the scheduler that
// drives its slots (src/runtime/scheduler.cpp).
#include <atomic>
#include <memory>

#include "io/model_files.h"
#include "model/llama.h"
#include "runtime/step_runner.h"
#include "sspan/checkpoint.h"
#include "sspan/engine.h"

namespace sspan {

struct Engine::Impl {
  EngineOptions opt;
  ModelConfig config;
  Checkpoint ckpt;
  Tokenizer tok;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<StepRunner> steps;
  LoadStats load;
  int max_ctx = 0;
  std::atomic<bool> scheduled{false};  // a Scheduler drives the slots

  explicit Impl(const EngineOptions& o);
  Impl(const EngineOptions& o, ModelFiles&& files);

  bool is_eos(int32_t id) const;
  // Prompt text as ids, BOS first when the tokenizer adds one; never empty.
  std::vector<int> encode_prompt(std::string_view text) const;

 private:
  void check_vocabularies();
};

}  // namespace sspan
