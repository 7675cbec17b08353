#pragma once
// The engine: a loaded model + tokenizer + backend with a preallocated KV cache, and the
// decode loop that applies a span policy to every processed token.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sspan/config.h"
#include "sspan/span.h"
#include "sspan/tokenizer.h"

namespace sspan {

struct EngineOptions {
  std::filesystem::path model_dir;
  std::filesystem::path tokenizer_file;  // empty: model_dir / "tokenizer.model"
  std::string device = "cpu";            // "cpu" or "cuda"
  std::string dtype = "float16";         // weights/activations on a GPU: float16 or bfloat16
  int threads = 0;                       // CPU threads; 0: all cores
  int max_context = 0;                   // 0: the model's max_position_embeddings (capped at 4096)
  int max_batch = 1;                     // sequences decoded together (KV-cache slots)
  int max_step_rows = 512;               // prompt tokens per prefill pass (longer prompts: several)
  // Called while weights load: (bytes loaded, total bytes).
  std::function<void(size_t, size_t)> on_load_progress;
};

struct SamplingOptions {
  float temperature = 0.f;  // 0: greedy
  int top_k = 0;            // 0: off
  float top_p = 1.f;        // 1: off
  uint64_t seed = 0;
};

// The span policy: "dense", a built-in grammar ("arith", "summary"), or a grammar JSON file.
struct SpanOptions {
  std::string policy = "dense";
  int block_size = 64;
};

struct GenerateOptions {
  int max_new_tokens = 256;
  SamplingOptions sampling;
  SpanOptions span;
  bool stop_at_eos = true;
};

enum class StopReason { Eos, Length, Context };
std::string_view stop_reason_name(StopReason r);

// Span statistics of one request.
struct SpanStats {
  int64_t sparse_tokens = 0;   // generated tokens processed in sparse mode
  int64_t dense_tokens = 0;    // generated tokens processed in dense mode
  double mean_sparsity = 0.0;  // over generated tokens
  SpanEvents events;
};

struct GenerationResult {
  std::string prompt;
  std::vector<int> prompt_ids;  // BOS included
  std::vector<int> ids;         // generated ids (EOS included when it stopped there)
  std::string text;             // generated text
  StopReason stop = StopReason::Length;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  SpanStats span;
};

// One processed position, for --span-trace.
struct TraceRecord {
  int request = 0;
  int32_t pos = 0;
  int32_t id = 0;
  std::string piece;
  std::string text;  // the bytes the token stands for (what the span rule read)
  int32_t line = 0;
  bool sparse = false;
  bool generated = false;
  std::vector<PosRange> attended;
  int64_t n_attended = 0;
  double sparsity = 0.0;
};

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
  std::vector<int> prompt_ids;      // BOS included
  std::vector<TokenScore> tokens;   // completion tokens
  double nll = 0.0;                 // total negative log-likelihood (nats)
  double perplexity = 0.0;
  double seconds = 0.0;
  SpanStats span;                   // over completion positions
};

struct LoadStats {
  double seconds = 0.0;
  size_t weight_bytes = 0;
  size_t kv_cache_bytes = 0;
  std::string backend;
};

class Engine {
 public:
  explicit Engine(const EngineOptions& options);
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;

  // Generate a continuation for each prompt, all decoded together (static batch; each
  // stops at its own EOS or limit). prompts.size() <= max_batch.
  std::vector<GenerationResult> generate(const std::vector<std::string>& prompts, const GenerateOptions& options,
                                         const GenerateCallbacks& callbacks = {});

  // Teacher-forced scoring of BOS + prompt + completion under a span policy.
  ScoreResult score(std::string_view prompt, std::string_view completion, const SpanOptions& span,
                    const GenerateCallbacks& callbacks = {});

  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  const LoadStats& load_stats() const;
  int max_context() const;
  int max_batch() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sspan
