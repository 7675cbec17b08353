#include "runtime/request_state.h"

#include <algorithm>

#include "common/check.h"

namespace sspan {
namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

}  // namespace

SpanStats SpanTally::stats(const SpanEvents& events) const {
  SpanStats s;
  s.sparse_tokens = sparse;
  s.dense_tokens = dense;
  s.attended = attended;
  const int64_t n = sparse + dense;
  s.mean_sparsity = n ? sparsity_sum / double(n) : 0.0;
  s.events = events;
  return s;
}

RequestState::RequestState(PreparedRequest p, int slot, int64_t step, const RequestContext& ctx)
    : prep_(std::move(p)),
      ctx_(ctx),
      slot_(slot),
      tracker_(prep_.policy->start()),
      sampler_(prep_.request.options.sampling, ctx.tok.vocab_size()),
      decoder_(ctx.tok),
      stop_(prep_.request.options.stop),
      admitted_(Clock::now()) {
  input_ = prep_.prompt_ids;
  if (scoring()) input_.insert(input_.end(), prep_.request.forced.begin(), prep_.request.forced.end() - 1);
  history_ = prep_.prompt_ids;
  result_.prompt = prep_.request.prompt;
  result_.prompt_ids.assign(prep_.prompt_ids.begin(), prep_.prompt_ids.end());
  result_.stats.prompt_tokens = int(prep_.prompt_ids.size());
  result_.stats.queue_seconds = seconds_between(prep_.submitted, admitted_);
  result_.stats.admitted_step = step;
}

int32_t RequestState::input_or_forced(size_t p) const {
  const size_t P = prep_.prompt_ids.size();
  return p < P ? prep_.prompt_ids[p] : prep_.request.forced[p - P];
}

RequestState::Row RequestState::next_prefill() {
  const size_t p = fed_++;
  const size_t P = prep_.prompt_ids.size();
  const bool logits = scoring() ? p + 1 >= P : fed_ == input_.size() && prep_.request.options.max_new_tokens > 0;
  return {input_[p], int32_t(p), p < P, logits};
}

RequestState::Row RequestState::next_decode() {
  SSPAN_CHECK(pending_ >= 0, "request {}: a decode row without a pending token", prep_.shared->id);
  const int32_t id = pending_;
  pending_ = -1;
  return {id, tracker_->last_pos() + 1, false, true};
}

void RequestState::pushed(const Row& row) {
  const bool generated = !row.in_prompt;
  const std::string text = ctx_.token_text(row.token);
  const int32_t line = line_;
  line_ += int32_t(std::count(text.begin(), text.end(), '\n'));
  if (generated) tally_.add(tracker_->last_sparse(), tracker_->last_count(), row.pos);
  if (!prep_.request.on_trace) return;
  TraceRecord r;
  r.request = int(prep_.shared->id);
  r.pos = row.pos;
  r.id = row.token;
  r.piece = ctx_.tok.piece(row.token);
  r.text = text;
  r.line = line;
  r.sparse = tracker_->last_sparse();
  r.generated = generated;
  r.attended = tracker_->last_attended();
  r.n_attended = tracker_->last_count();
  r.sparsity = 1.0 - double(r.n_attended) / double(row.pos + 1);
  prep_.request.on_trace(r);
}

TokenLogprob RequestState::logprob_of(int32_t id, std::span<const float> logits) const {
  TokenLogprob t;
  t.id = id;
  t.logprob = log_softmax_at(logits, id);
  const int k = prep_.request.options.top_logprobs;
  if (k > 0) {
    const auto decodable = logits.first(size_t(ctx_.tok.vocab_size()));
    std::vector<int32_t> order(decodable.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
    const size_t n = std::min(order.size(), size_t(k));
    std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(n), order.end(), [&](int32_t a, int32_t b) {
      return decodable[size_t(a)] > decodable[size_t(b)] || (decodable[size_t(a)] == decodable[size_t(b)] && a < b);
    });
    for (size_t i = 0; i < n; ++i) t.top.emplace_back(order[i], log_softmax_at(logits, order[i]));
  }
  return t;
}

void RequestState::add_score(int32_t id, std::span<const float> logits) {
  result_.ids.push_back(id);
  result_.logprobs.push_back(logprob_of(id, logits));
}

bool RequestState::stream(int32_t id, std::string_view text, double logprob) {
  if (!prep_.request.on_token) return true;
  TokenEvent e;
  e.id = id;
  e.index = int(result_.ids.size()) - 1;
  e.text = text;
  e.logprob = logprob;
  if (id >= 0) e.sparsity = tracker_->last_sparsity();  // the row whose logits chose `id`
  return prep_.request.on_token(e);
}

std::optional<StopReason> RequestState::accept(int32_t chosen, std::span<const float> logits) {
  const GenerateOptions& o = prep_.request.options;
  const auto& forced = prep_.request.forced;
  const size_t k = result_.ids.size();
  const int32_t id = forced.empty() ? chosen : forced[k];
  if (k == 0) first_token_ = Clock::now();
  result_.ids.push_back(id);
  history_.push_back(id);
  double logprob = 0.0;
  if (o.logprobs) {
    result_.logprobs.push_back(logprob_of(id, logits));
    logprob = result_.logprobs.back().logprob;
  }
  if (forced.empty() && o.stop_at_eos && ctx_.is_eos(id)) {
    if (!stream(id, {}, logprob)) return StopReason::Cancelled;
    return StopReason::Eos;
  }
  const std::string piece = decoder_.push(id);
  // Teacher forcing replays a fixed text: stop strings do not apply to it.
  const std::string_view released = forced.empty() ? stop_.push(piece) : std::string_view(piece);
  result_.text.append(released);
  if (!stream(id, released, logprob)) return StopReason::Cancelled;
  if (stop_.stopped()) return StopReason::StopString;
  if (!forced.empty() && k + 1 == forced.size()) return StopReason::Forced;
  if (int(k + 1) >= o.max_new_tokens) return StopReason::Length;
  if (tracker_->last_pos() + 1 >= ctx_.max_ctx) return StopReason::Context;
  pending_ = id;
  return std::nullopt;
}

const SpanTally& RequestState::finish(StopReason reason, int64_t step, std::string error) {
  const auto now = Clock::now();
  if (reason != StopReason::StopString && reason != StopReason::Error) {
    // Release what the detokenizer and the stop matcher still hold.
    std::string rest = decoder_.finish();
    std::string tail(prep_.request.forced.empty() ? stop_.push(rest) : std::string_view(rest));
    if (stop_.stopped() && reason != StopReason::Cancelled) reason = StopReason::StopString;
    tail += stop_.finish();
    result_.text += tail;
    if (!tail.empty() && reason != StopReason::Cancelled) stream(-1, tail, 0.0);
  }
  result_.stop = reason;
  result_.error = std::move(error);
  result_.span = tally_.stats(tracker_->events());
  RequestStats& s = result_.stats;
  s.generated_tokens = int(result_.ids.size());
  s.finished_step = step;
  const bool any_token = first_token_ != Clock::time_point{};
  s.prefill_seconds = seconds_between(admitted_, any_token ? first_token_ : now);
  s.ttft_seconds = any_token ? seconds_between(prep_.submitted, first_token_) : 0.0;
  s.decode_seconds = any_token ? seconds_between(first_token_, now) : 0.0;

  detail::RequestShared& sh = *prep_.shared;
  {
    std::lock_guard<std::mutex> lock(sh.mutex);
    sh.result = std::move(result_);
    sh.status = RequestStatus::Done;
  }
  sh.done_cv.notify_all();
  return tally_;
}

}  // namespace sspan
