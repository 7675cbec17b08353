#pragma once
// A request while the scheduler runs it: its prepared inputs, its span tracker, sampler,
// detokenizer and stop matcher, and what it has produced so far. The scheduler
// (src/runtime/scheduler.cpp) decides which rows it contributes to a step; this file
// says what one row and one chosen token do to a request.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include "runtime/sampler.h"
#include "runtime/stop_matcher.h"
#include "sspan/scheduler.h"
#include "sspan/tokenizer.h"

namespace sspan {

using Clock = std::chrono::steady_clock;

namespace detail {

// What a handle and the scheduler share: the status, the cancel flag, the final result.
struct RequestShared {
  uint64_t id = 0;
  mutable std::mutex mutex;
  mutable std::condition_variable done_cv;
  RequestStatus status = RequestStatus::Queued;  // under mutex
  std::atomic<bool> cancel{false};
  GenerationResult result;  // written once, before status becomes Done
};

}  // namespace detail

// A validated request waiting for a slot (built by Scheduler::submit).
struct PreparedRequest {
  std::shared_ptr<detail::RequestShared> shared;
  Request request;
  std::vector<int32_t> prompt_ids;
  std::shared_ptr<const SpanPolicy> policy;
  Clock::time_point submitted;
};

// Running totals over the generated positions of one request.
struct SpanTally {
  int64_t sparse = 0, dense = 0, attended = 0;
  double sparsity_sum = 0.0;
  void add(bool is_sparse, int64_t n_attended, int32_t pos) {
    (is_sparse ? sparse : dense) += 1;
    attended += n_attended;
    sparsity_sum += 1.0 - double(n_attended) / double(pos + 1);
  }
  SpanStats stats(const SpanEvents& events) const;
};

// The engine facts a request needs while it runs.
struct RequestContext {
  const Tokenizer& tok;
  std::function<std::string(int32_t)> token_text;  // what a tracker reads for a token
  std::function<bool(int32_t)> is_eos;
  int max_ctx;
};

class RequestState {
 public:
  RequestState(PreparedRequest p, int slot, int64_t step, const RequestContext& ctx);
  RequestState(const RequestState&) = delete;
  RequestState& operator=(const RequestState&) = delete;

  // ---- what the scheduler asks ----
  int slot() const { return slot_; }
  detail::RequestShared& shared() { return *prep_.shared; }
  bool prefilling() const { return fed_ < input_.size(); }
  size_t prefill_left() const { return input_.size() - fed_; }
  bool scoring() const { return prep_.request.forced_mode == ForcedMode::Prefill && !prep_.request.forced.empty(); }
  const Sampler& sampler() const { return sampler_; }
  bool wants_logprobs() const { return prep_.request.options.logprobs; }
  int prompt_tokens() const { return int(prep_.prompt_ids.size()); }

  // ---- rows ----
  struct Row {
    int32_t token, pos;
    bool in_prompt;
    bool logits;  // the row's logits are needed
  };
  // The next prefill input token. Its logits are needed for the last prompt row (unless
  // max_new_tokens is 0), and for every row that predicts a scored token.
  Row next_prefill();
  Row next_decode();  // the pending token, whose logits choose the next
  // After the step pushed `row` through tracker(): the trace record and span tally.
  void pushed(const Row& row);
  SpanTracker& tracker() { return *tracker_; }
  // The id that the prefill row at `pos` predicts when scoring.
  int32_t scored_id(int32_t pos) const { return input_or_forced(size_t(pos) + 1); }

  // ---- tokens ----
  // Choose (host) the next token from `logits` with u01; or record the id a device chose.
  int32_t sample(std::span<const float> logits, float u01) { return sampler_.sample(logits, u01, history_); }
  float uniform() { return sampler_.uniform(); }
  // The row's next token is `chosen` (sampled; replaced by the forced id under teacher
  // forcing). Streams it; returns the stop reason when the request ends here.
  std::optional<StopReason> accept(int32_t chosen, std::span<const float> logits_or_empty);
  // A scored (teacher-forced, ForcedMode::Prefill) token's log-probability.
  void add_score(int32_t id, std::span<const float> logits);
  // Whether a cancel was asked from outside.
  bool cancel_requested() const { return prep_.shared->cancel.load(); }

  // End the request (flushing held text unless it stopped at a stop string) and publish
  // its result to the handle. Returns the sparsity tally for the scheduler's totals.
  const SpanTally& finish(StopReason reason, int64_t step, std::string error = {});

 private:
  int32_t input_or_forced(size_t p) const;
  bool stream(int32_t id, std::string_view text, double logprob);
  TokenLogprob logprob_of(int32_t id, std::span<const float> logits) const;

  PreparedRequest prep_;
  const RequestContext& ctx_;
  int slot_;
  std::vector<int32_t> input_;    // prefill input: the prompt (+ forced ids but the last, when scoring)
  size_t fed_ = 0;                // input tokens pushed so far
  std::vector<int32_t> history_;  // prompt + chosen ids, for the repeat penalty
  int32_t pending_ = -1;          // the next decode row's token
  int32_t line_ = 0;              // line of the next pushed token (traces)
  std::unique_ptr<SpanTracker> tracker_;
  Sampler sampler_;
  StreamDecoder decoder_;
  StopMatcher stop_;
  SpanTally tally_;
  GenerationResult result_;
  Clock::time_point admitted_, first_token_;
};

}  // namespace sspan
