#pragma once
// One generation request as the scheduler runs it: what goes in (prompt, limits,
// sampling, span policy, stop strings, teacher-forced ids), what it streams while it runs
// and what comes back (text, ids, log-probabilities, span statistics, timings).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "sspan/sampling.h"
#include "sspan/span.h"

namespace sspan {

// The span policy of a request: a spec for SpanPolicy::parse ("dense", "arith",
// "summary", a grammar .json file, each optionally ":block=N") and the block size used
// when the spec names none.
struct SpanOptions {
  std::string policy = "dense";
  int block_size = 64;
};

struct GenerateOptions {
  int max_new_tokens = 256;
  SamplingOptions sampling;
  SpanOptions span;
  bool stop_at_eos = true;         // false: EOS is a token like any other
  std::vector<std::string> stop;   // generation ends before the first of these strings (not in the text)
  bool logprobs = false;           // log-probability of each generated (or forced) token
  int top_logprobs = 0;            // and of the this many most likely alternatives (0..20)
};

enum class StopReason {
  Eos,         // the model produced an end-of-sequence token
  Length,      // max_new_tokens reached
  Context,     // the KV slot is full (max context)
  StopString,  // a stop string appeared
  Forced,      // the teacher-forced ids ran out
  Cancelled,   // the streaming callback returned false, or the handle was cancelled
  Error,       // the step failed; GenerationResult::error says why
};
std::string_view stop_reason_name(StopReason r);  // "eos", "length", ..., as in --json output

// Span statistics of one request, over its generated (or forced) positions that went
// through the model.
struct SpanStats {
  int64_t sparse_tokens = 0;   // processed in sparse mode
  int64_t dense_tokens = 0;    // processed in dense mode
  double mean_sparsity = 0.0;  // mean of 1 - |S_t| / (t + 1)
  int64_t attended = 0;        // sum of |S_t|: keys (and values) read per layer and KV head
  SpanEvents events;
};

struct RequestStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double queue_seconds = 0.0;    // submitted -> admitted into a slot
  double prefill_seconds = 0.0;  // admitted -> first generated token chosen
  double ttft_seconds = 0.0;     // submitted -> first generated token (time to first token)
  double decode_seconds = 0.0;   // first generated token -> end
  int64_t admitted_step = -1;    // scheduler step that admitted it (steps count from 0)
  int64_t finished_step = -1;
  double decode_tokens_per_s() const {
    return decode_seconds > 0 && generated_tokens > 1 ? double(generated_tokens - 1) / decode_seconds : 0.0;
  }
};

struct TokenLogprob {
  int32_t id = 0;
  double logprob = 0.0;
  std::vector<std::pair<int32_t, double>> top;  // top_logprobs alternatives, most likely first
};

struct GenerationResult {
  std::string prompt;                 // the prompt text (empty when given as ids)
  std::vector<int> prompt_ids;        // as processed (BOS included for text prompts)
  std::vector<int> ids;               // generated (or forced) ids; EOS included when it stopped there
  std::string text;                   // their text (stop string excluded)
  StopReason stop = StopReason::Length;
  std::vector<TokenLogprob> logprobs;  // one per id when asked
  SpanStats span;
  RequestStats stats;
  std::string error;                  // why, when stop == StopReason::Error
};

// One processed position, for --span-trace.
struct TraceRecord {
  int request = 0;  // the scheduler's request id (Engine::generate: the prompt's index)
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

// What a request streams while it runs, on the scheduler's thread.
struct TokenEvent {
  int32_t id = -1;        // the token just chosen (or forced); -1 for the final flush
  int index = 0;          // its index among the generated tokens
  std::string_view text;  // newly complete text (valid UTF-8; text that might begin a stop string is held back)
  double logprob = 0.0;   // when logprobs were asked
  // Sparsity 1 - |S_t| / (t + 1) of the row whose logits chose it (the position before
  // it; a prompt row is dense, 0); 0 for the final flush. What a trace record says of that
  // row, without the trace's cost.
  double sparsity = 0.0;
};
// Return false to cancel: the request ends with StopReason::Cancelled and frees its slot
// in the same step.
using TokenCallback = std::function<bool(const TokenEvent&)>;

// How teacher-forced ids are processed.
enum class ForcedMode {
  Decode,   // one per step after the prompt, exactly as generation runs (the sampler still
            // runs on every row; its choice is replaced by the forced id)
  Prefill,  // with the prompt in prefill chunks, only their log-probabilities (scoring)
};

struct Request {
  std::string prompt;              // text, encoded with BOS
  std::vector<int32_t> prompt_ids; // or ids, used as given (add BOS yourself) when non-empty
  GenerateOptions options;
  // Teacher forcing: when non-empty, these ids are the continuation whatever the model
  // predicts; the request ends with StopReason::Forced when they run out (EOS and stop
  // strings do not end it).
  std::vector<int32_t> forced;
  ForcedMode forced_mode = ForcedMode::Decode;
  TokenCallback on_token;                          // streaming; may be empty
  std::function<void(const TraceRecord&)> on_trace;  // span trace of every processed position; may be empty
};

}  // namespace sspan
