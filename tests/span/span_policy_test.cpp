// SpanPolicy::parse, the one place policy strings are read: names, options, files, errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "sspan/error.h"
#include "sspan/span.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

TEST(SpanPolicy, NamesAndTheBlockOption) {
  const auto dense = SpanPolicy::parse("dense");
  EXPECT_TRUE(dense->dense());
  EXPECT_EQ(dense->block_size(), 64);
  const auto arith = SpanPolicy::parse("arith:block=32", 64);
  EXPECT_FALSE(arith->dense());
  EXPECT_EQ(arith->name(), "arith");
  EXPECT_EQ(arith->block_size(), 32);
  EXPECT_EQ(SpanPolicy::parse("summary", 128)->block_size(), 128);
  // Each start() is a fresh request state of the policy's block size.
  auto a = arith->start(), b = arith->start();
  a->push("", true);
  EXPECT_EQ(a->last_pos(), 0);
  EXPECT_THROW(b->last_pos(), Error);
  EXPECT_EQ(b->block_size(), 32);
}

TEST(SpanPolicy, AGrammarFileIsAPolicyEvenWithAColonInItsName) {
  const auto dir = test::scratch_dir("policy");
  const auto path = dir / "my:grammar.json";
  std::ofstream(path) << SpanGrammar::builtin("arith").to_json();
  const auto p = SpanPolicy::parse(path.string());
  EXPECT_FALSE(p->dense());
  EXPECT_EQ(SpanPolicy::parse(path.string() + ":block=16", 64)->block_size(), 16) << "FILE:OPTIONS";
}

TEST(SpanPolicy, UnknownNamesAndOptionsAreErrorsThatSayWhat) {
  EXPECT_THAT([] { SpanPolicy::parse("arithmetic"); }, ThrowsMessage<Error>(HasSubstr("unknown span policy 'arithmetic'")));
  EXPECT_THAT([] { SpanPolicy::parse("arith:window=4"); }, ThrowsMessage<Error>(HasSubstr("unknown option 'window'")));
  EXPECT_THAT([] { SpanPolicy::parse("arith:block=48"); }, ThrowsMessage<Error>(HasSubstr("block must be")));
  EXPECT_THAT([] { SpanPolicy::parse("arith:block"); }, ThrowsMessage<Error>(HasSubstr("not key=value")));
  EXPECT_THAT([] { SpanPolicy::parse("arith:block=32,block=16"); }, ThrowsMessage<Error>(HasSubstr("twice")));
  EXPECT_THROW(SpanPolicy::parse(""), Error);
  EXPECT_THROW(SpanPolicy::parse("dense", 48), Error);
}

TEST(SpanBatch, AnAttendedRowIsEncodedAsItsRangesWithTheLastAsTheTail) {
  SpanBatch b;
  b.reset(16);
  const std::vector<PosRange> r = {{0, 1}, {20, 40}, {50, 61}};
  b.add_attended_row(r, 60);
  EXPECT_EQ(b.row_ranges(0), r);
  EXPECT_EQ(b.tail_start[0], 50);
  const std::vector<PosRange> missing_self = {{0, 10}};
  EXPECT_THROW(b.add_attended_row(missing_self, 20), Error);
  const std::vector<PosRange> overlapping = {{0, 10}, {5, 21}};
  EXPECT_THROW(b.add_attended_row(overlapping, 20), Error);
}

}  // namespace
}  // namespace sspan
