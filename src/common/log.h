#pragma once
// The library's spdlog logger (see include/sspan/log.h for the public controls). Library
// code logs through sspan::logger() and never through spdlog's default logger.
#include <spdlog/logger.h>

namespace sspan {

spdlog::logger& logger();

}  // namespace sspan
