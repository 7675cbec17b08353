// The "sspan" logger: a sink that writes to stderr or hands each message to the host
// app's LogSink, switchable at any time under the sink's own lock.
#include "common/log.h"

#include <spdlog/sinks/base_sink.h>

#include <cstdio>
#include <memory>
#include <mutex>

#include "sspan/log.h"

namespace sspan {
namespace {

LogLevel from_spdlog(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug: return LogLevel::Debug;
    case spdlog::level::info: return LogLevel::Info;
    case spdlog::level::warn: return LogLevel::Warn;
    case spdlog::level::err:
    case spdlog::level::critical: return LogLevel::Error;
    default: return LogLevel::Off;
  }
}

spdlog::level::level_enum to_spdlog(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return spdlog::level::debug;
    case LogLevel::Info: return spdlog::level::info;
    case LogLevel::Warn: return spdlog::level::warn;
    case LogLevel::Error: return spdlog::level::err;
    case LogLevel::Off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

class SwitchableSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void set(LogSink sink) {
    std::lock_guard<std::mutex> lock(mutex_);
    sink_ = std::move(sink);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    if (sink_) {
      sink_(from_spdlog(msg.level), text);
      return;
    }
    const auto name = spdlog::level::to_string_view(msg.level);
    std::fprintf(stderr, "[%.*s] %.*s\n", int(name.size()), name.data(), int(text.size()), text.data());
  }
  void flush_() override { std::fflush(stderr); }

 private:
  LogSink sink_;
};

struct Log {
  std::shared_ptr<SwitchableSink> sink = std::make_shared<SwitchableSink>();
  spdlog::logger logger{"sspan", sink};
  Log() { logger.set_level(spdlog::level::info); }
};

Log& instance() {
  static Log log;
  return log;
}

}  // namespace

spdlog::logger& logger() { return instance().logger; }

void set_log_level(LogLevel level) { instance().logger.set_level(to_spdlog(level)); }
LogLevel log_level() { return from_spdlog(instance().logger.level()); }
void set_log_sink(LogSink sink) { instance().sink->set(std::move(sink)); }

}  // namespace sspan
