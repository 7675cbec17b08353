#include "server/metrics.h"

#include <fmt/format.h>

namespace sspan::server {
namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
}

}  // namespace

std::string prometheus_text(const SchedulerStats& s, const ServerCounters& c) {
  std::string out;
  metric(out, "sspan_requests_running", "gauge", "Requests holding a KV slot.", s.running);
  metric(out, "sspan_requests_queued", "gauge", "Requests waiting for a KV slot.", s.queued);
  metric(out, "sspan_slots_total", "gauge", "KV slots (--parallel).", s.slots);
  metric(out, "sspan_slot_occupancy", "gauge", "Share of KV slots in use.", s.slots ? double(s.running) / s.slots : 0.0);
  out += "# HELP sspan_requests_total Requests that ended, by outcome.\n# TYPE sspan_requests_total counter\n";
  out += fmt::format("sspan_requests_total{{outcome=\"finished\"}} {}\n", s.finished);
  out += fmt::format("sspan_requests_total{{outcome=\"cancelled\"}} {}\n", s.cancelled);
  out += fmt::format("sspan_requests_total{{outcome=\"failed\"}} {}\n", s.failed);
  out += "# HELP sspan_rejected_total Requests answered with an error status, by kind.\n"
         "# TYPE sspan_rejected_total counter\n";
  out += fmt::format("sspan_rejected_total{{kind=\"bad_request\"}} {}\n", c.bad_requests.load());
  out += fmt::format("sspan_rejected_total{{kind=\"queue_full\"}} {}\n", c.busy.load());
  out += fmt::format("sspan_rejected_total{{kind=\"server_error\"}} {}\n", c.server_errors.load());
  metric(out, "sspan_prompt_tokens_total", "counter", "Prompt tokens processed.", double(s.prompt_tokens));
  metric(out, "sspan_generation_tokens_total", "counter", "Tokens generated.", double(s.generated_tokens));
  metric(out, "sspan_steps_total", "counter", "Forward steps run.", double(s.steps));
  metric(out, "sspan_step_seconds_total", "counter", "Seconds spent in forward steps.", s.step_seconds);
  metric(out, "sspan_generation_tokens_per_second", "gauge", "Generated tokens per second of stepping.",
         s.step_seconds > 0 ? double(s.generated_tokens) / s.step_seconds : 0.0);
  metric(out, "sspan_mean_sparsity", "gauge", "Mean span sparsity over the generated positions.", s.mean_sparsity);
  return out;
}

}  // namespace sspan::server
