#pragma once
// Continuous batching over an Engine's KV slots. Requests wait in a FIFO queue and are
// admitted into free slots between steps; every step carries one decode row per running
// request plus chunks of newly admitted prompts, up to the engine's max_step_rows, so a
// long prompt never stalls the others. A finished or cancelled request frees its slot at
// once. Each request samples from its own seeded stream, so its tokens do not depend on
// what else is in the batch.
//
// Threads: submit(), cancel and the handles' waits are safe from any thread. step() and
// run_until_idle() run on one thread at a time; start() runs them on a thread of the
// scheduler's own. Callbacks run on the stepping thread.
#include <chrono>
#include <cstdint>
#include <memory>

#include "sspan/error.h"
#include "sspan/request.h"

namespace sspan {

class Engine;

// submit() on a full queue.
class QueueFullError : public Error {
 public:
  using Error::Error;
};

struct SchedulerOptions {
  int max_queued = 1024;  // requests waiting for a slot; more is a QueueFullError
  // Admit only into an empty batch, the whole batch at once (static batching): what
  // continuous batching is measured against (sspan-bench serve).
  bool static_batching = false;
};

enum class RequestStatus { Queued, Running, Done };

namespace detail {
struct RequestShared;
}

// A submitted request. Copies refer to the same request.
class RequestHandle {
 public:
  RequestHandle() = default;
  uint64_t id() const;
  RequestStatus status() const;
  bool done() const { return status() == RequestStatus::Done; }
  // Ask the request to stop: a queued one leaves the queue, a running one ends with
  // StopReason::Cancelled at the next step and frees its slot.
  void cancel() const;
  // Block until done; the result stays valid while a handle exists.
  const GenerationResult& wait() const;
  bool wait_for(std::chrono::milliseconds timeout) const;  // true when done

 private:
  friend class Scheduler;
  explicit RequestHandle(std::shared_ptr<detail::RequestShared> s) : s_(std::move(s)) {}
  std::shared_ptr<detail::RequestShared> s_;
};

struct SchedulerStats {
  int slots = 0;
  int running = 0;
  int queued = 0;
  int64_t submitted = 0;
  int64_t finished = 0;   // ended for any reason other than cancellation or error
  int64_t cancelled = 0;
  int64_t failed = 0;
  int64_t prompt_tokens = 0;     // processed prompt tokens
  int64_t generated_tokens = 0;  // chosen (or forced) tokens
  int64_t steps = 0;
  double step_seconds = 0.0;     // time spent in forward steps and token selection
  double mean_sparsity = 0.0;    // over every generated position processed so far
};

class Scheduler {
 public:
  // Drives all of `engine`'s KV slots; the engine must outlive the scheduler, and only
  // one scheduler may drive an engine at a time.
  explicit Scheduler(Engine& engine, SchedulerOptions options = {});
  ~Scheduler();  // stops the thread of start(); requests still open end as Cancelled
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Validate and enqueue: tokenizes the prompt, resolves the span policy and checks every
  // option, so a bad request is an Error here (naming the field), never a failed step.
  // A prompt must leave room for one generated token in the context.
  RequestHandle submit(Request request);

  // Admit what fits, run one forward step, choose and stream the tokens. Returns false
  // when there was no request to run.
  bool step();
  void run_until_idle();

  // Step on a thread of the scheduler's own whenever there is work, until stop().
  void start();
  void stop();  // joins the thread; open requests stay open (run_until_idle can finish them)

  SchedulerStats stats() const;
  Engine& engine();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sspan
