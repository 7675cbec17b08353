#pragma once
// The engine: a loaded model, its tokenizer and a backend with a preallocated KV cache of
// max_batch slots. Three ways to use it:
//   - generate() / score(): whole requests, run through a Scheduler (include/sspan/scheduler.h);
//   - a Scheduler of your own for continuous batching with request handles;
//   - decode(): one forward step over rows you build (include/sspan/step.h).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sspan/config.h"
#include "sspan/request.h"
#include "sspan/span.h"
#include "sspan/step.h"
#include "sspan/tokenizer.h"

namespace sspan {

struct EngineOptions {
  // A Hugging Face directory, a .gguf file, or a .safetensors file with config.json beside it.
  std::filesystem::path model_dir;
  // Empty: the model's own (tokenizer.model, else tokenizer.json; a GGUF's metadata).
  std::filesystem::path tokenizer_file;
  std::string device = "cpu";            // "cpu" or "cuda"
  std::string dtype = "float16";         // weights/activations on a GPU: float16 or bfloat16
  int threads = 0;                       // CPU threads; 0: all cores
  // CPU KV cache element type: "auto" (f16 for fp16/bf16 checkpoints, f32 for fp32 ones),
  // "f32", "f16" or "bf16". A GPU keeps its cache in `dtype`.
  std::string kv_dtype = "auto";
  int max_context = 0;                   // 0: the model's max_position_embeddings (capped at 4096)
  int max_batch = 1;                     // KV-cache slots: sequences decoded together
  int max_step_rows = 512;               // rows per forward step (prompt chunks + decode rows)
  // Called while weights load: (bytes loaded, total bytes).
  std::function<void(size_t, size_t)> on_load_progress;
};

// Streaming callbacks of generate() and score().
struct GenerateCallbacks {
  std::function<void(int request, std::string_view text)> on_text;  // streamed, valid UTF-8
  std::function<void(const TraceRecord&)> on_trace;
};

struct TokenScore {
  int32_t id = 0;
  std::string piece;
  double logprob = 0.0;
};

struct ScoreResult {
  std::vector<int> prompt_ids;      // BOS first when the tokenizer adds one
  std::vector<TokenScore> tokens;   // completion tokens
  double nll = 0.0;                 // total negative log-likelihood (nats)
  double perplexity = 0.0;
  double seconds = 0.0;
  SpanStats span;                   // over completion positions that went through the model
};

struct LoadStats {
  double seconds = 0.0;
  size_t weight_bytes = 0;
  size_t kv_cache_bytes = 0;
  std::string backend;
};

class Scheduler;

class Engine {
 public:
  explicit Engine(const EngineOptions& options);
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;

  // Generate a continuation of each prompt with continuous batching (more prompts than
  // slots wait for one); results in the order of the prompts. Each request samples from
  // its own stream seeded with options.sampling.seed.
  std::vector<GenerationResult> generate(const std::vector<std::string>& prompts, const GenerateOptions& options,
                                         const GenerateCallbacks& callbacks = {});

  // Teacher-forced scoring of BOS + prompt + completion under a span policy: the
  // log-probability of every completion token (the final token is scored, not processed).
  ScoreResult score(std::string_view prompt, std::string_view completion, const SpanOptions& span,
                    const GenerateCallbacks& callbacks = {});

  // ---- step-level API ----
  // One forward step over `rows` (at most max_step_rows(), or max_batch if larger). Each
  // row appends its token to its slot at pos == slot_length(slot), rows of one slot in
  // position order; a row attends to its span within its slot. Returns the number of
  // rows that asked for logits. Not to be mixed with a running Scheduler.
  int decode(std::span<const StepRow> rows);
  // Logits [vocab_size] of the i-th row (in row order) that asked for them in the last
  // decode(); valid until the next decode().
  std::span<const float> logits(int i);
  int32_t slot_length(int slot) const;          // positions held by the slot
  void clear_slot(int slot);                    // forget the slot's positions
  void truncate_slot(int slot, int32_t length); // keep positions [0, length)

  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  const LoadStats& load_stats() const;
  int max_context() const;
  int max_batch() const;
  int max_step_rows() const;
  // Ids the tokenizer can decode: [0, decodable_vocab()); the rest of the model's
  // vocabulary (padding rows) is never sampled.
  int decodable_vocab() const;
  bool is_eos(int32_t id) const;
  // Bytes of one K or V element in the KV cache (4 for fp32, 2 for fp16/bf16).
  double kv_element_bytes() const;

 private:
  friend class Scheduler;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sspan
