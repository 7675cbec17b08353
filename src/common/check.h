#pragma once
// SSPAN_CHECK(cond, fmt, args...): throw sspan::Error with a formatted message when cond
// is false. Library code never exits or aborts; errors travel to the boundary.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sspan/error.h"

#define SSPAN_CHECK(cond, ...)                                   \
  do {                                                           \
    if (!(cond)) throw ::sspan::Error(::fmt::format(__VA_ARGS__)); \
  } while (0)

#define SSPAN_FAIL(...) throw ::sspan::Error(::fmt::format(__VA_ARGS__))
