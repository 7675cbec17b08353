#pragma once
// GET /metrics: the scheduler's counters and the server's rejections in the Prometheus
// text exposition format (version 0.0.4).
#include <atomic>
#include <string>

#include "sspan/scheduler.h"

namespace sspan::server {

struct ServerCounters {
  std::atomic<int64_t> bad_requests{0};  // 4xx answers
  std::atomic<int64_t> busy{0};          // 503: the queue was full
  std::atomic<int64_t> server_errors{0}; // other 5xx
  void count_error(int status) {
    if (status == 503) ++busy;
    else if (status >= 500) ++server_errors;
    else if (status >= 400) ++bad_requests;
  }
};

std::string prometheus_text(const SchedulerStats& s, const ServerCounters& c);

}  // namespace sspan::server
