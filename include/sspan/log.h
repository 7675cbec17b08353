#pragma once
// The library's log: one logger named "sspan", writing "[level] message" lines to stderr
// by default (never to stdout, which belongs to the host application). A host app can
// set the level or route messages to its own sink.
#include <functional>
#include <string_view>

namespace sspan {

enum class LogLevel { Debug, Info, Warn, Error, Off };

void set_log_level(LogLevel level);  // default: Info
LogLevel log_level();

// Receives every message at or above the level, without the "[level] " prefix. Called
// from whichever thread logs (a scheduler thread too), one call at a time.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;
// Route messages to `sink`; an empty sink restores stderr.
void set_log_sink(LogSink sink);

}  // namespace sspan
