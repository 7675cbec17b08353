// Host token selection: argmax ties and NaN (the rule the device argmax follows too).
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sspan/error.h"

namespace sspan {
namespace {

TEST(Argmax, FirstMaximumWinsAndNanIsNeverChosen) {
  EXPECT_EQ(argmax(std::vector<float>{1.f, 3.f, 3.f, 2.f}), 1);
  EXPECT_EQ(argmax(std::vector<float>{NAN, 1.f, 2.f}), 2);  // a NaN first does not win
  EXPECT_EQ(argmax(std::vector<float>{0.f, NAN, -1.f}), 0);
  EXPECT_EQ(argmax(std::vector<float>{-INFINITY, -5.f}), 1);
  EXPECT_EQ(argmax(std::vector<float>{1.f, INFINITY, NAN, INFINITY}), 1);
  EXPECT_THROW(argmax(std::vector<float>{NAN, NAN}), Error);
  EXPECT_THROW(argmax(std::vector<float>{}), Error);
}

TEST(Sampler, GreedyIsArgmax) {
  SamplingOptions o;
  Sampler s(o, 4);
  EXPECT_EQ(s.sample(std::vector<float>{NAN, 0.5f, 2.f, 2.f}, 0.3f), 2);
}

}  // namespace
}  // namespace sspan
