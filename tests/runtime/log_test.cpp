// The library logs through its own logger: to stderr by default, to a host sink when set,
// never to stdout; the level is the host's to choose.
#include <gtest/gtest.h>

#include <mutex>

#include "runtime_fixture.h"
#include "sspan/log.h"

namespace sspan {
namespace {

TEST(Log, MessagesGoToTheHostSinkAtItsLevelAndNeverToStdout) {
  std::mutex m;
  std::vector<std::pair<LogLevel, std::string>> got;
  set_log_sink([&](LogLevel l, std::string_view msg) {
    std::lock_guard<std::mutex> lock(m);
    got.emplace_back(l, std::string(msg));
  });
  set_log_level(LogLevel::Info);
  testing::internal::CaptureStdout();
  { Engine e(test::tiny_options(1, 64)); }
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, LogLevel::Info);
  EXPECT_EQ(got[0].second.rfind("loaded ", 0), 0u) << got[0].second;

  set_log_level(LogLevel::Warn);
  EXPECT_EQ(log_level(), LogLevel::Warn);
  { Engine e(test::tiny_options(1, 64)); }
  EXPECT_EQ(got.size(), 1u) << "info is below the level";
  set_log_sink({});
  set_log_level(LogLevel::Info);
}

}  // namespace
}  // namespace sspan
