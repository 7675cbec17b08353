// The CPU ops' thread pool (see thread_pool.h).
//
// A job is published by bumping `claim_` to a new (tag, 0) and `gen_` to the same tag.
// Threads claim task indexes with a compare-and-swap on `claim_`, whose high half is the
// job's tag: a worker that wakes after its job finished fails the swap and goes back to
// waiting, so the caller never waits for a thread that holds no task. The caller waits only
// for tasks already claimed (`done_`), spinning briefly and then sleeping on `done_seq_`.
#include "cpu/thread_pool.h"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace sspan::cpu {
namespace {

// How long an idle thread spins before it sleeps. Long enough to bridge the gaps between
// the ops of a decode step on an idle machine, short enough that a thread with no work
// gives its core back quickly on a busy one.
constexpr auto kSpin = std::chrono::microseconds(100);

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Sleep while *word == expected (spurious returns are fine: callers re-check).
void futex_wait(std::atomic<uint32_t>& word, uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
  word.wait(expected);
#endif
}

void futex_wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
  word.notify_all();
#endif
}

// Spin until pred() or kSpin has passed; true if pred() held.
template <class Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (pred()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return false;
  }
}

int default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

thread_local bool t_in_task = false;  // nested parallel_for runs inline

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard lock(grow_);
      stop_.store(true);
      gen_.fetch_add(2);
      futex_wake_all(gen_);
    }
    for (auto& t : workers_) t.join();
  }

  void set_threads(int n) { threads_.store(n > 0 ? n : default_threads()); }
  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void run(int64_t n_tasks, detail::TaskFn fn, void* ctx, int max_threads) {
    if (n_tasks <= 0) return;
    if (n_tasks > int64_t(UINT32_MAX)) return run_inline(n_tasks, fn, ctx);  // the claim counter is 32-bit
    const int want = int(std::min<int64_t>(max_threads > 0 ? max_threads : threads(), n_tasks));
    if (want <= 1 || t_in_task || busy_.test_and_set(std::memory_order_acquire)) return run_inline(n_tasks, fn, ctx);
    using Clock = std::chrono::steady_clock;
    const Clock::time_point start = Clock::now();
    if (start < serial_until_) {  // the machine was found oversubscribed: work alone for a while
      busy_.clear(std::memory_order_release);
      return run_inline(n_tasks, fn, ctx);
    }
    try {
      grow(want - 1);
    } catch (...) {  // no more threads to be had: do the work here
      busy_.clear(std::memory_order_release);
      return run_inline(n_tasks, fn, ctx);
    }
    const int64_t own = work(publish(n_tasks, fn, ctx, want), 0);
    const Clock::time_point own_done = Clock::now();
    wait_done(n_tasks);
    note_wait(own_done - start, own, Clock::now() - own_done, own_done);
    std::exception_ptr error = std::move(error_);
    error_ = nullptr;
    busy_.clear(std::memory_order_release);
    if (error) std::rethrow_exception(error);
  }

 private:
  static void run_inline(int64_t n_tasks, detail::TaskFn fn, void* ctx) {
    const bool outer = t_in_task;
    t_in_task = true;
    try {
      for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    } catch (...) {
      t_in_task = outer;
      throw;
    }
    t_in_task = outer;
  }

  // Make sure at least n workers exist.
  void grow(int n) {
    std::lock_guard lock(grow_);
    while (int(workers_.size()) < n) {
      const int index = int(workers_.size()) + 1;
      workers_.emplace_back([this, index] { worker_main(index); });
    }
  }

  // Returns the new job's tag.
  uint32_t publish(int64_t n_tasks, detail::TaskFn fn, void* ctx, int threads) {
    const uint32_t tag = gen_.load() + 2;
    claim_.store(uint64_t(tag) << 32);  // invalidates claims of the previous job first
    n_tasks_.store(n_tasks);
    fn_.store(fn);
    ctx_.store(ctx);
    job_threads_.store(threads);
    done_.store(0);
    gen_.store(tag);  // last: a worker that sees it reads fields at least this new
    if (sleepers_.load() > 0) futex_wake_all(gen_);
    return tag;
  }

  // Claim and run tasks of the job tagged `tag` until none are left. The fields read here
  // may belong to a newer job than `tag`; then the tag check fails before any task runs.
  // Returns the number of tasks this thread ran.
  int64_t work(uint32_t tag, int thread) {
    const int64_t n = n_tasks_.load();
    const detail::TaskFn fn = fn_.load();
    void* const ctx = ctx_.load();
    t_in_task = true;
    for (int64_t ran = 0;; ++ran) {
      uint64_t c = claim_.load();
      int64_t task;
      do {
        task = int64_t(c & 0xffffffffu);
        if ((c >> 32) != tag || task >= n) {
          t_in_task = false;
          return ran;
        }
      } while (!claim_.compare_exchange_weak(c, c + 1));
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          fn(ctx, task, thread);
        } catch (...) {
          std::lock_guard lock(error_mutex_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true);
        }
      }
      if (done_.fetch_add(1) + 1 == n) {  // the last task: wake the caller if it sleeps
        done_seq_.fetch_add(1);
        if (caller_sleeping_.load()) futex_wake_all(done_seq_);
      }
    }
  }

  // After the caller ran `own` tasks in `own_time`, it waited `waited` for the workers'
  // last tasks. A wait far longer than a task means a worker was descheduled holding one
  // (other processes busy on every core): the caller then works alone for a while, which
  // is as fast as one thread, instead of stalling on every op, and tries again later
  // (backing off while the machine stays busy).
  void note_wait(std::chrono::steady_clock::duration own_time, int64_t own, std::chrono::steady_clock::duration waited,
                 std::chrono::steady_clock::time_point now) {
    const auto task = own_time / std::max<int64_t>(own, 1);
    if (waited > kStallMin && waited > 8 * task) {
      serial_until_ = now + backoff_;
      backoff_ = std::min<std::chrono::steady_clock::duration>(2 * backoff_, kMaxBackoff);
    } else {
      backoff_ = kMinBackoff;
    }
  }

  void wait_done(int64_t n) {
    if (!spin_until([&] { return done_.load(std::memory_order_acquire) == n; })) {
      for (;;) {
        const uint32_t seq = done_seq_.load();
        caller_sleeping_.store(true);
        if (done_.load() == n) break;
        futex_wait(done_seq_, seq);
      }
      caller_sleeping_.store(false);
    }
    failed_.store(false);
  }

  void worker_main(int index) {
    // A worker may start only after its first job (or the pool's end) was published: it
    // then waits for the next job, and checks stop_ before it ever sleeps.
    uint32_t seen = gen_.load();
    for (;;) {
      uint32_t g;
      if (stop_.load()) return;
      if (!spin_until([&] { return (g = gen_.load(std::memory_order_acquire)) != seen; })) {
        sleepers_.fetch_add(1);
        while ((g = gen_.load()) == seen && !stop_.load()) futex_wait(gen_, seen);
        sleepers_.fetch_sub(1);
      }
      if (stop_.load()) return;
      seen = g;
      // A job tagged g may already be over (or replaced); work() then claims nothing.
      if (index < job_threads_.load()) work(g, index);
    }
  }

  static constexpr auto kStallMin = std::chrono::microseconds(500);
  static constexpr auto kMinBackoff = std::chrono::milliseconds(10);
  static constexpr auto kMaxBackoff = std::chrono::milliseconds(640);

  std::atomic<int> threads_{default_threads()};
  // Oversubscription guard (see note_wait), touched only by the caller holding busy_.
  std::chrono::steady_clock::time_point serial_until_{};
  std::chrono::steady_clock::duration backoff_ = kMinBackoff;
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;  // a caller is using the workers
  std::mutex grow_;
  std::vector<std::thread> workers_;  // thread index = position + 1

  // The current job. Atomics because a late worker may read them while the next job is
  // being published; its claim then fails on the tag.
  std::atomic<uint32_t> gen_{0};       // the job's tag, even; workers wait on it
  std::atomic<uint64_t> claim_{0};     // tag << 32 | next task index
  std::atomic<int64_t> n_tasks_{0};
  std::atomic<detail::TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int> job_threads_{0};
  std::atomic<int64_t> done_{0};       // tasks finished
  std::atomic<uint32_t> done_seq_{0};  // bumped when the last task finishes; the caller sleeps on it
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<int> sleepers_{0};       // workers asleep on gen_
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};    // a task threw: skip the rest
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void set_num_threads(int n) { pool().set_threads(n); }
int num_threads() { return pool().threads(); }

namespace detail {
void run_parallel(int64_t n_tasks, TaskFn fn, void* ctx, int max_threads) { pool().run(n_tasks, fn, ctx, max_threads); }
}  // namespace detail

}  // namespace sspan::cpu
