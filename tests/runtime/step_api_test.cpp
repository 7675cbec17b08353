// The step-level API: rows of (token, position, slot) with an explicit span, KV slots
// that persist across calls, clear and truncate, and the errors for rows that do not fit.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime_fixture.h"
#include "sspan/error.h"
#include "sspan/scheduler.h"

namespace sspan {
namespace {

std::vector<float> copy(std::span<const float> s) { return {s.begin(), s.end()}; }

int64_t mirror_count(const std::vector<PosRange>& ranges) {
  int64_t n = 0;
  for (const auto& r : ranges) n += r.end - r.begin;
  return n;
}

class StepApi : public ::testing::Test {
 protected:
  StepApi() : engine_(test::tiny_options(/*batch=*/2, /*ctx=*/128)) {
    const auto p = engine_.tokenizer().encode("(42 * 56) + (5 * 32) [0]\n", true);
    // Line 3 names lines 0 and 2 only: its positions skip line 1.
    const auto c = engine_.tokenizer().encode_continuation("[-1] 42 * 56=2352\n[-1] So 42 * 56=2352 [1]\n[0,1] 5 * 32");
    ids_.assign(p.begin(), p.end());
    prompt_ = ids_.size();
    ids_.insert(ids_.end(), c.begin(), c.end());
  }
  Engine engine_;
  std::vector<int32_t> ids_;
  size_t prompt_ = 0;
};

TEST_F(StepApi, ATrackerRowAndTheSameSpanAsExplicitRangesGiveTheSameLogits) {
  auto policy = SpanPolicy::parse("arith");
  auto tracker = policy->start();
  auto mirror = policy->start();  // pushed by hand to read each row's ranges
  std::vector<std::vector<PosRange>> ranges;
  std::vector<StepRow> rows;
  for (size_t t = 0; t < ids_.size(); ++t) {
    mirror->push(t == 0 ? "" : engine_.tokenizer().token_bytes(ids_[t]), t < prompt_);
    ranges.push_back(mirror->last_attended());
  }
  int sparse = 0;
  for (size_t t = 0; t < ids_.size(); ++t) {
    const bool last = t + 1 == ids_.size();
    rows.push_back({ids_[t], int32_t(t), 0, last, RowSpan::push(*tracker, t < prompt_)});
    rows.push_back({ids_[t], int32_t(t), 1, last, RowSpan::attended(ranges[t])});
    sparse += mirror_count(ranges[t]) < int64_t(t) + 1;
  }
  ASSERT_GT(sparse, 5) << "the text has sparse lines";
  ASSERT_EQ(engine_.decode(rows), 2);
  // The same keys; the ranges' encoding may put a merged line in the dense tail, which
  // changes only the fp32 summation order.
  const auto a = copy(engine_.logits(0)), b = copy(engine_.logits(1));
  for (size_t v = 0; v < a.size(); ++v) ASSERT_NEAR(a[v], b[v], 1e-4f * (1.f + std::abs(a[v]))) << "logit " << v;
  EXPECT_TRUE(tracker->last_sparse());
  EXPECT_EQ(engine_.slot_length(0), int32_t(ids_.size()));
}

TEST_F(StepApi, SlotsPersistAcrossCallsAndTruncateRewindsThem) {
  const int n = int(ids_.size());
  std::vector<StepRow> rows;
  for (int t = 0; t < n; ++t) rows.push_back({ids_[size_t(t)], t, 0, t == n - 1, RowSpan::dense()});
  engine_.decode(rows);
  const auto whole = copy(engine_.logits(0));

  // The same text in two calls: the second half attends to the first call's K/V.
  engine_.clear_slot(1);
  const int half = n / 2;
  std::vector<StepRow> a(rows.begin(), rows.begin() + half), b(rows.begin() + half, rows.end());
  for (auto* part : {&a, &b})
    for (auto& r : *part) r.slot = 1;
  engine_.decode(a);
  engine_.decode(b);
  EXPECT_EQ(copy(engine_.logits(0)), whole);

  // Truncate to `half` and decode the second half again.
  engine_.truncate_slot(1, half);
  EXPECT_EQ(engine_.slot_length(1), half);
  engine_.decode(b);
  EXPECT_EQ(copy(engine_.logits(0)), whole);
  engine_.clear_slot(1);
  EXPECT_EQ(engine_.slot_length(1), 0);
}

TEST_F(StepApi, RowsThatDoNotFitTheirSlotAreErrors) {
  const std::vector<StepRow> gap = {{ids_[0], 3, 0, false, RowSpan::dense()}};
  EXPECT_THROW(engine_.decode(gap), Error);  // slot 0 expects position 0
  const std::vector<StepRow> bad_slot = {{ids_[0], 0, 2, false, RowSpan::dense()}};
  EXPECT_THROW(engine_.decode(bad_slot), Error);
  const std::vector<PosRange> not_self = {{0, 1}};
  const std::vector<StepRow> bad_span = {{ids_[0], 0, 0, false, RowSpan::dense()},
                                         {ids_[1], 1, 0, false, RowSpan::attended(not_self)}};
  EXPECT_THROW(engine_.decode(bad_span), Error);
  const std::vector<StepRow> bad_token = {{9999, 0, 0, false, RowSpan::dense()}};
  EXPECT_THROW(engine_.decode(bad_token), Error);
  EXPECT_EQ(engine_.slot_length(0), 0) << "a rejected step writes nothing";
  EXPECT_THROW(engine_.truncate_slot(0, 1), Error);
  {
    Scheduler s(engine_);
    const std::vector<StepRow> ok = {{ids_[0], 0, 0, false, RowSpan::dense()}};
    EXPECT_THROW(engine_.decode(ok), Error) << "the scheduler owns the slots";
  }
}

}  // namespace
}  // namespace sspan
