// The CPU ops' thread pool: every task runs exactly once, whatever the thread count, job
// size, nesting, exceptions or concurrent callers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu/thread_pool.h"

namespace sspan::cpu {
namespace {

// Restores the default thread count when a test ends.
struct ThreadsGuard {
  explicit ThreadsGuard(int n) { set_num_threads(n); }
  ~ThreadsGuard() { set_num_threads(0); }
};

TEST(ThreadPool, EveryTaskRunsOnceOnAValidThread) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadsGuard guard(threads);
    EXPECT_EQ(num_threads(), threads);
    for (int64_t n : {0, 1, 2, 7, 64, 1000}) {
      std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
      std::atomic<bool> bad_thread{false};
      parallel_for(n, [&](int64_t t, int thread) {
        runs[size_t(t)].fetch_add(1);
        if (thread < 0 || thread >= threads) bad_thread = true;
      });
      for (int64_t t = 0; t < n; ++t) ASSERT_EQ(runs[size_t(t)].load(), 1) << "task " << t << " of " << n;
      EXPECT_FALSE(bad_thread) << threads << " threads";
    }
  }
}

TEST(ThreadPool, ManyShortJobsInARow) {
  // Back-to-back jobs exercise workers that wake up after their job was replaced.
  ThreadsGuard guard(4);
  std::vector<int64_t> out(5);
  for (int job = 0; job < 20000; ++job) {
    const int64_t n = 1 + job % 5;
    parallel_for(n, [&](int64_t t, int) { out[size_t(t)] = job * 10 + t; });
    for (int64_t t = 0; t < n; ++t) ASSERT_EQ(out[size_t(t)], job * 10 + t) << "job " << job;
  }
}

TEST(ThreadPool, MaxThreadsCapsTheThreadsOfOneJob) {
  ThreadsGuard guard(4);
  std::atomic<bool> beyond{false};
  parallel_for(
      100, [&](int64_t, int thread) {
        if (thread >= 2) beyond = true;
      },
      2);
  EXPECT_FALSE(beyond);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadsGuard guard(3);
  std::vector<std::atomic<int>> runs(16 * 16);
  parallel_for(16, [&](int64_t i, int) {
    parallel_for(16, [&](int64_t j, int thread) {
      EXPECT_EQ(thread, 0) << "a nested job runs on the task's thread";
      runs[size_t(i * 16 + j)].fetch_add(1);
    });
  });
  for (auto& r : runs) ASSERT_EQ(r.load(), 1);
}

TEST(ThreadPool, ExceptionReachesTheCallerAndThePoolStaysUsable) {
  ThreadsGuard guard(3);
  EXPECT_THROW(parallel_for(50,
                            [&](int64_t t, int) {
                              if (t == 17) throw std::runtime_error("task 17 failed");
                            }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  parallel_for(100, [&](int64_t t, int) { sum += t; });
  EXPECT_EQ(sum.load(), 99 * 100 / 2);
}

TEST(ThreadPool, ConcurrentCallersEachGetAllTheirTasks) {
  ThreadsGuard guard(2);
  auto caller = [](int64_t seed, int64_t* result) {
    int64_t total = 0;
    for (int job = 0; job < 2000; ++job) {
      std::vector<int64_t> part(8);
      parallel_for(8, [&](int64_t t, int) { part[size_t(t)] = seed + t; });
      for (int64_t v : part) total += v;
    }
    *result = total;
  };
  int64_t a = 0, b = 0;
  std::thread ta(caller, 1000, &a), tb(caller, 5000, &b);
  ta.join();
  tb.join();
  EXPECT_EQ(a, 2000 * (8 * 1000 + 28));
  EXPECT_EQ(b, 2000 * (8 * 5000 + 28));
}

TEST(ThreadPool, ChunksCoverTheRangeExactlyOnce) {
  ThreadsGuard guard(3);
  for (int64_t count : {0, 1, 5, 99, 100000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
    parallel_chunks(count, 10, [&](int64_t begin, int64_t end) {
      EXPECT_LE(begin, end);
      for (int64_t i = begin; i < end; ++i) hits[size_t(i)].fetch_add(1);
    });
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << i << " of " << count;
  }
}

TEST(ThreadPool, AWorkerHoldingUpTheCallerMakesItWorkAloneForAWhile) {
  // A worker that sits on its task (as a descheduled one does) while the caller has
  // finished its own: the next jobs run on the caller alone rather than wait again.
  ThreadsGuard guard(2);
  for (int attempt = 0; attempt < 30; ++attempt) {
    std::atomic<bool> worker_ran{false};
    parallel_for(64, [&](int64_t, int thread) {
      if (thread != 0) {
        worker_ran = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
    });
    if (!worker_ran) {  // the worker never woke in time, or an earlier stall still has the caller alone
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    std::atomic<bool> on_worker{false};
    parallel_for(64, [&](int64_t, int thread) {
      if (thread != 0) on_worker = true;
    });
    EXPECT_FALSE(on_worker) << "the job right after a stall ran on a worker";
    return;
  }
  GTEST_SKIP() << "the worker never took part; nothing to check";
}

TEST(ThreadPool, DefaultIsTheCpusThisProcessMayUse) {
  set_num_threads(0);
  EXPECT_GE(num_threads(), 1);
  EXPECT_LE(num_threads(), int(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace
}  // namespace sspan::cpu
