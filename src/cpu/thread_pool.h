#pragma once
// The worker threads of the CPU ops: one process-wide pool, the calling thread included.
//
// parallel_for(n_tasks, fn) runs fn(task, thread) for every task in [0, n_tasks) and returns
// when all have finished. Threads claim tasks one at a time from a shared counter, so a
// thread the OS has descheduled (another process busy on every core) leaves its share to
// the others instead of holding up the step, and the caller alone still finishes the job
// at its single-thread speed. fn must compute each task's result from its inputs only,
// whichever thread runs it: `thread` (0 = the caller, 1.. = workers, < num_threads())
// indexes per-thread scratch and nothing else, so results never depend on scheduling.
//
// Workers spin for a short while after a job (the next op of a decode step usually follows
// within microseconds) and then sleep on a futex; they never spin for long on a busy
// machine. A parallel_for called from inside a task, or while another thread is using the
// pool, runs its tasks inline on the calling thread.
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace sspan::cpu {

// Threads the CPU ops use, the caller included. n <= 0 restores the default: the number of
// CPUs this process may run on (its affinity mask). Process-wide, like OMP_NUM_THREADS.
void set_num_threads(int n);
int num_threads();

namespace detail {
using TaskFn = void (*)(void* ctx, int64_t task, int thread);
void run_parallel(int64_t n_tasks, TaskFn fn, void* ctx, int max_threads);
}  // namespace detail

// Run fn(task, thread) for task in [0, n_tasks) on up to `max_threads` threads (0: all of
// num_threads()). An exception thrown by fn is rethrown here once every task has finished
// or been skipped.
template <class Fn>
void parallel_for(int64_t n_tasks, Fn&& fn, int max_threads = 0) {
  using F = std::remove_reference_t<Fn>;
  detail::run_parallel(
      n_tasks, [](void* ctx, int64_t task, int thread) { (*static_cast<F*>(ctx))(task, thread); },
      const_cast<void*>(static_cast<const void*>(&fn)), max_threads);
}

// Split [0, count) into contiguous chunks of at least `min_chunk` elements (a few per
// thread) and run fn(begin, end) for each; below 2 * min_chunk it runs inline.
template <class Fn>
void parallel_chunks(int64_t count, int64_t min_chunk, Fn&& fn) {
  constexpr int64_t kChunksPerThread = 4;  // running threads take over a late one's chunks
  const int64_t chunks = std::max<int64_t>(1, std::min(count / std::max<int64_t>(min_chunk, 1),
                                                       kChunksPerThread * num_threads()));
  if (chunks == 1) {
    if (count > 0) fn(int64_t(0), count);
    return;
  }
  parallel_for(chunks, [&](int64_t c, int) { fn(c * count / chunks, (c + 1) * count / chunks); });
}

}  // namespace sspan::cpu
