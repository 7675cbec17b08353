// The scheduler: the project's one decode loop. Each step() admits queued requests into
// free KV slots (FIFO), builds one step of rows (a decode row per running request, then
// prompt chunks in admission order up to max_step_rows), runs it, chooses every next
// token (on the device when the step allows, else on the host from each request's own
// sampler), streams, and frees the slots of requests that ended.
#include "sspan/scheduler.h"

#include <algorithm>
#include <deque>
#include <thread>

#include "common/check.h"
#include "common/log.h"
#include "runtime/engine_impl.h"
#include "runtime/request_state.h"

namespace sspan {

// ---- handles ----

uint64_t RequestHandle::id() const {
  SSPAN_CHECK(s_, "empty request handle");
  return s_->id;
}
RequestStatus RequestHandle::status() const {
  SSPAN_CHECK(s_, "empty request handle");
  std::lock_guard<std::mutex> lock(s_->mutex);
  return s_->status;
}
void RequestHandle::cancel() const {
  SSPAN_CHECK(s_, "empty request handle");
  s_->cancel = true;
}
const GenerationResult& RequestHandle::wait() const {
  SSPAN_CHECK(s_, "empty request handle");
  std::unique_lock<std::mutex> lock(s_->mutex);
  s_->done_cv.wait(lock, [&] { return s_->status == RequestStatus::Done; });
  return s_->result;
}
bool RequestHandle::wait_for(std::chrono::milliseconds timeout) const {
  SSPAN_CHECK(s_, "empty request handle");
  std::unique_lock<std::mutex> lock(s_->mutex);
  return s_->done_cv.wait_for(lock, timeout, [&] { return s_->status == RequestStatus::Done; });
}

// ---- the scheduler ----

namespace {

// What a logit row of the step is for.
struct LogitRow {
  RequestState* request;
  bool next_token;  // choose the next token; else score the id at pos + 1
  int32_t pos;
};

}  // namespace

struct Scheduler::Impl {
  Engine& engine;
  Engine::Impl& eng;
  SchedulerOptions opt;
  RequestContext ctx;

  // Shared with submitting threads, under `mutex`.
  mutable std::mutex mutex;
  std::condition_variable work_cv;
  std::deque<PreparedRequest> queue;
  uint64_t next_id = 1;
  SchedulerStats totals;
  double sparsity_sum = 0.0;
  int64_t sparsity_n = 0;

  // The stepping thread's own.
  std::vector<std::unique_ptr<RequestState>> running;  // admission order
  std::vector<int> free_slots;                         // ascending
  int64_t step_index = 0;
  std::vector<LogitRow> logit_rows;   // [m]
  std::vector<float> uniforms;        // [m]
  std::vector<int32_t> picked;        // [m]
  std::vector<RequestState*> ending_after_step;
  std::vector<StopReason> ending_reason;

  std::thread thread;
  bool stopping = false;  // under mutex

  Impl(Engine& e, SchedulerOptions o)
      : engine(e),
        eng(*e.impl_),
        opt(o),
        ctx{eng.tok, [this](int32_t id) { return eng.steps->token_text(id); }, [this](int32_t id) { return eng.is_eos(id); },
            eng.max_ctx} {
    SSPAN_CHECK(opt.max_queued >= 1, "scheduler: max queued must be >= 1, got {}", opt.max_queued);
    bool expected = false;
    SSPAN_CHECK(eng.scheduled.compare_exchange_strong(expected, true),
                "another Scheduler already drives this engine's slots");
    const int slots = eng.opt.max_batch;
    for (int s = 0; s < slots; ++s) {
      free_slots.push_back(s);
      eng.steps->clear(s);
    }
    const size_t R = size_t(eng.steps->max_rows());
    logit_rows.reserve(R);
    uniforms.reserve(R);
    picked.reserve(R);
    running.reserve(size_t(slots));
    totals.slots = slots;
  }
  ~Impl() { eng.scheduled = false; }

  PreparedRequest prepare(Request r);
  void admit();
  void end(RequestState& r, StopReason reason, std::string error = {});
  void drop_ended();
  bool run_step();
  void choose_tokens(int m);
};

PreparedRequest Scheduler::Impl::prepare(Request r) {
  const GenerateOptions& o = r.options;
  SSPAN_CHECK(o.max_new_tokens >= 0, "max new tokens must be >= 0, got {}", o.max_new_tokens);
  SSPAN_CHECK(o.top_logprobs >= 0 && o.top_logprobs <= 20, "top logprobs must be in [0, 20], got {}", o.top_logprobs);
  Sampler check(o.sampling, eng.tok.vocab_size());  // validates the sampling options
  PreparedRequest p;
  p.policy = SpanPolicy::parse(o.span.policy, o.span.block_size);
  SSPAN_CHECK(!p.policy->needs_attention_record() || eng.backend->records_attention(),
              "span policy '{}' needs the attention mass of its full steps, which the {} backend does not record "
              "(run it on the CPU backend)",
              o.span.policy, eng.backend->name());
  const int decodable = eng.tok.vocab_size();
  auto check_ids = [&](const std::vector<int32_t>& ids, const char* what) {
    for (int32_t id : ids)
      SSPAN_CHECK(id >= 0 && id < decodable, "{}: token id {} outside the tokenizer's vocabulary of {}", what, id,
                  decodable);
  };
  if (!r.prompt_ids.empty()) {
    check_ids(r.prompt_ids, "prompt");
    p.prompt_ids = r.prompt_ids;
  } else {
    const auto ids = eng.encode_prompt(r.prompt);
    p.prompt_ids.assign(ids.begin(), ids.end());
  }
  SSPAN_CHECK(!p.prompt_ids.empty(), "the prompt is empty (give text, or ids with BOS first)");
  check_ids(r.forced, "forced continuation");
  const int64_t P = int64_t(p.prompt_ids.size());
  if (r.forced.empty()) {
    SSPAN_CHECK(P < eng.max_ctx,
                "the prompt is {} tokens but the context holds {} (--max-context, model limit {}); it must leave "
                "room for at least one generated token",
                P, eng.max_ctx, eng.config.max_position_embeddings);
  } else {
    const int64_t n = P + int64_t(r.forced.size()) - 1;  // positions that go through the model
    SSPAN_CHECK(n <= eng.max_ctx, "prompt + forced continuation are {} tokens but the context holds {}",
                P + int64_t(r.forced.size()), eng.max_ctx);
  }
  p.request = std::move(r);
  p.submitted = Clock::now();
  return p;
}

void Scheduler::Impl::admit() {
  std::lock_guard<std::mutex> lock(mutex);
  // Requests cancelled while queued leave without a slot.
  for (auto it = queue.begin(); it != queue.end();) {
    if (!it->shared->cancel) {
      ++it;
      continue;
    }
    GenerationResult res;
    res.prompt = it->request.prompt;
    res.prompt_ids.assign(it->prompt_ids.begin(), it->prompt_ids.end());
    res.stop = StopReason::Cancelled;
    res.stats.prompt_tokens = int(it->prompt_ids.size());
    res.stats.queue_seconds = std::chrono::duration<double>(Clock::now() - it->submitted).count();
    {
      std::lock_guard<std::mutex> l(it->shared->mutex);
      it->shared->result = std::move(res);
      it->shared->status = RequestStatus::Done;
    }
    it->shared->done_cv.notify_all();
    ++totals.cancelled;
    it = queue.erase(it);
  }
  const bool may_admit = !opt.static_batching || running.empty();
  while (may_admit && !free_slots.empty() && !queue.empty()) {
    const int slot = free_slots.front();
    free_slots.erase(free_slots.begin());
    PreparedRequest p = std::move(queue.front());
    queue.pop_front();
    {
      std::lock_guard<std::mutex> l(p.shared->mutex);
      p.shared->status = RequestStatus::Running;
    }
    eng.steps->clear(slot);
    running.push_back(std::make_unique<RequestState>(std::move(p), slot, step_index, ctx));
  }
  totals.queued = int(queue.size());
  totals.running = int(running.size());
}

void Scheduler::Impl::end(RequestState& r, StopReason reason, std::string error) {
  const SpanTally& t = r.finish(reason, step_index, std::move(error));
  eng.steps->clear(r.slot());
  free_slots.insert(std::lower_bound(free_slots.begin(), free_slots.end(), r.slot()), r.slot());
  std::lock_guard<std::mutex> lock(mutex);
  sparsity_sum += t.sparsity_sum;
  sparsity_n += t.sparse + t.dense;
  if (reason == StopReason::Cancelled) ++totals.cancelled;
  else if (reason == StopReason::Error) ++totals.failed;
  else ++totals.finished;
}

void Scheduler::Impl::drop_ended() {
  running.erase(std::remove_if(running.begin(), running.end(),
                               [](const auto& r) { return r->shared().status == RequestStatus::Done; }),
                running.end());
  std::lock_guard<std::mutex> lock(mutex);
  totals.running = int(running.size());
  totals.mean_sparsity = sparsity_n ? sparsity_sum / double(sparsity_n) : 0.0;
}

// Next tokens of the step's logit rows: on the device when every logit row chooses a
// token with the same device-capable options and the whole vocabulary is decodable; else
// from host logits with each request's sampler. One uniform per sampled token either way.
void Scheduler::Impl::choose_tokens(int m) {
  uniforms.assign(size_t(m), 0.f);
  picked.assign(size_t(m), -1);
  bool device = eng.tok.vocab_size() == eng.config.vocab_size;
  const SamplingOptions* first = nullptr;
  for (int i = 0; i < m; ++i) {
    const LogitRow& lr = logit_rows[size_t(i)];
    if (!lr.next_token) {
      device = false;
      continue;
    }
    RequestState& r = *lr.request;
    const SamplingOptions& s = r.sampler().options();
    if (!r.sampler().greedy()) uniforms[size_t(i)] = r.uniform();
    if (r.wants_logprobs() || !s.device_capable()) device = false;
    if (!first) first = &s;
    else if (s.temperature != first->temperature || s.top_k != first->top_k || s.top_p != first->top_p) device = false;
  }
  if (device && first && eng.steps->pick_on_device(*first, uniforms, picked)) return;
  for (int i = 0; i < m; ++i) {
    const LogitRow& lr = logit_rows[size_t(i)];
    if (lr.next_token) picked[size_t(i)] = lr.request->sample(eng.steps->logits(i), uniforms[size_t(i)]);
  }
}

bool Scheduler::Impl::run_step() {
  for (auto& r : running)
    if (r->cancel_requested()) end(*r, StopReason::Cancelled);
  drop_ended();
  admit();
  if (running.empty()) return false;

  const auto t0 = Clock::now();
  logit_rows.clear();
  ending_after_step.clear();
  ending_reason.clear();
  int64_t prompt_rows = 0;
  try {
    int n_rows = 0;
    // The step's block size: the oldest request's (other trackers are re-encoded).
    eng.steps->begin(running.front()->tracker().block_size());
    auto add = [&](RequestState& r, const RequestState::Row& row) {
      eng.steps->add({row.token, row.pos, r.slot(), row.logits, RowSpan::push(r.tracker(), row.in_prompt)});
      r.pushed(row);
      if (row.logits) logit_rows.push_back({&r, !r.scoring(), row.pos});
      ++n_rows;
    };
    // One decode row per request that has a pending token.
    for (auto& r : running)
      if (!r->prefilling()) add(*r, r->next_decode());
    // Prompt chunks in admission order, within max_step_rows (at least one row, so a
    // prompt always progresses even when decode rows fill the step).
    const int cap = eng.steps->max_rows();
    const int n_decode = n_rows;
    int budget = std::max(eng.opt.max_step_rows - n_decode, 1);
    budget = std::min(budget, cap - n_decode);
    for (auto& r : running) {
      if (budget <= 0) break;
      if (!r->prefilling()) continue;
      const int n = int(std::min<size_t>(r->prefill_left(), size_t(budget)));
      bool last_logits = false;
      for (int k = 0; k < n; ++k) {
        const auto row = r->next_prefill();
        add(*r, row);
        last_logits = row.logits;
      }
      budget -= n;
      prompt_rows += n;
      // Prefill done with no token to choose: scoring ends here, and so does a request
      // with max_new_tokens == 0.
      if (!r->prefilling() && (r->scoring() || !last_logits)) {
        ending_after_step.push_back(r.get());
        ending_reason.push_back(r->scoring() ? StopReason::Forced : StopReason::Length);
      }
    }

    const int m = eng.steps->run();
    choose_tokens(m);
    int64_t generated = 0;
    for (int i = 0; i < m; ++i) {
      const LogitRow& lr = logit_rows[size_t(i)];
      RequestState& r = *lr.request;
      if (!lr.next_token) {
        r.add_score(r.scored_id(lr.pos), eng.steps->logits(i));
        ++generated;
        continue;
      }
      const auto logits = r.wants_logprobs() ? eng.steps->logits(i) : std::span<const float>();
      ++generated;
      if (const auto stop = r.accept(picked[size_t(i)], logits)) end(r, *stop);
    }
    for (size_t k = 0; k < ending_after_step.size(); ++k) end(*ending_after_step[k], ending_reason[k]);
    std::lock_guard<std::mutex> lock(mutex);
    totals.prompt_tokens += prompt_rows;
    totals.generated_tokens += generated;
  } catch (const std::exception& e) {
    logger().error("step {} failed: {}", step_index, e.what());
    for (auto& r : running)
      if (r->shared().status != RequestStatus::Done) end(*r, StopReason::Error, e.what());
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    ++totals.steps;
    totals.step_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  ++step_index;
  drop_ended();
  return true;
}

Scheduler::Scheduler(Engine& engine, SchedulerOptions options) : impl_(std::make_unique<Impl>(engine, options)) {}

Scheduler::~Scheduler() {
  stop();
  Impl& im = *impl_;
  for (auto& r : im.running) im.end(*r, StopReason::Cancelled);
  im.running.clear();
  // Queued requests end as cancelled too.
  std::lock_guard<std::mutex> lock(im.mutex);
  for (auto& p : im.queue) {
    std::lock_guard<std::mutex> l(p.shared->mutex);
    p.shared->result.stop = StopReason::Cancelled;
    p.shared->status = RequestStatus::Done;
    p.shared->done_cv.notify_all();
  }
  im.queue.clear();
}

RequestHandle Scheduler::submit(Request request) {
  Impl& im = *impl_;
  PreparedRequest p = im.prepare(std::move(request));
  std::shared_ptr<detail::RequestShared> shared;
  {
    std::lock_guard<std::mutex> lock(im.mutex);
    if (int(im.queue.size()) >= im.opt.max_queued)
      throw QueueFullError(fmt::format("the queue is full ({} requests wait for a slot)", im.queue.size()));
    shared = std::make_shared<detail::RequestShared>();
    shared->id = im.next_id++;
    p.shared = shared;
    ++im.totals.submitted;
    im.queue.push_back(std::move(p));
    im.totals.queued = int(im.queue.size());
  }
  im.work_cv.notify_one();
  return RequestHandle(std::move(shared));
}

bool Scheduler::step() { return impl_->run_step(); }

void Scheduler::run_until_idle() {
  while (step()) {
  }
}

void Scheduler::start() {
  Impl& im = *impl_;
  SSPAN_CHECK(!im.thread.joinable(), "the scheduler is already running");
  im.stopping = false;
  im.thread = std::thread([&im] {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(im.mutex);
        im.work_cv.wait(lock, [&] { return im.stopping || !im.queue.empty() || !im.running.empty(); });
        if (im.stopping) return;
      }
      im.run_step();
    }
  });
}

void Scheduler::stop() {
  Impl& im = *impl_;
  if (!im.thread.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(im.mutex);
    im.stopping = true;
  }
  im.work_cv.notify_all();
  im.thread.join();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->totals;
}

Engine& Scheduler::engine() { return impl_->engine; }

}  // namespace sspan
