#pragma once
// The message of an expected sspan::Error, for tests of bad input.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "sspan/error.h"

namespace sspan::test {

// The message of the sspan::Error that `fn` throws; a test failure when it throws
// nothing (an empty string then fails every HasSubstr check as well).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const sspan::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an sspan::Error";
  return {};
}

}  // namespace sspan::test
