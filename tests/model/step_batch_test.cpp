// validate_step (the checks every backend runs in set_step) and the logits check, on the
// CPU backend and directly.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/backend.h"
#include "sspan/error.h"

namespace sspan {
namespace {

constexpr StepLimits kLimits{4, 256, 1000};

// Rows: slot 0 at 10..12 (dense, dense, sparse), slot 3 at 200 (dense).
struct Fixture {
  std::vector<int32_t> tokens{5, 6, 7, 8}, pos{10, 11, 12, 200}, slot{0, 0, 0, 3}, logit_rows{2, 3};
  std::vector<RowMode> mode{RowMode::Dense, RowMode::Dense, RowMode::Sparse, RowMode::Dense};
  SpanBatch span;
  Fixture() {
    span.reset(16);
    span.add_dense_row(10);
    span.add_dense_row(11);
    span.add_row({{0, 4}}, 8, 12);
    span.add_dense_row(200);
  }
  StepBatch step(const SpanBatch* s) const { return {tokens, pos, slot, mode, s, logit_rows}; }
};

TEST(ValidateStep, AcceptsAWellFormedMixedStep) {
  Fixture f;
  EXPECT_NO_THROW(validate_step(f.step(&f.span), kLimits));
  EXPECT_NO_THROW(validate_step(f.step(&f.span), {4, 256, 0}));  // vocabulary unknown
}

// Row 1 PerHead with 2 layers x 2 KV heads of head span rows; row 0 records its mass.
TEST(ValidateStep, PerHeadRowsAndRecordsFollowTheirRules) {
  const StepLimits limits{4, 256, 1000, /*layers=*/2, /*kv_heads=*/2};
  Fixture f;
  f.mode[1] = RowMode::PerHead;
  SpanBatch heads;
  heads.reset(16);
  for (int i = 0; i < 4; ++i) heads.add_row({{0, 2 + i}}, 9, 11);
  std::vector<int32_t> mass_rows{0}, query_rows{1, 2};
  const auto step = [&](const SpanBatch* h) {
    StepBatch s = f.step(&f.span);
    s.head_span = h;
    s.mass_rows = mass_rows;
    s.query_rows = query_rows;
    return s;
  };
  EXPECT_NO_THROW(validate_step(step(&heads), limits));
  EXPECT_THROW(validate_step(step(nullptr), limits), Error) << "PerHead rows without a head span";
  EXPECT_THROW(validate_step(step(&heads), kLimits), Error) << "a backend that takes no PerHead rows";
  EXPECT_THROW(validate_step(step(&heads), {4, 256, 1000, 2, 1}), Error) << "head rows for another head count";
  heads.pos[3] = 12;
  heads.tail_start[3] = 12;
  EXPECT_THROW(validate_step(step(&heads), limits), Error) << "a head row at another position";
  heads.pos[3] = 11;
  heads.tail_start[3] = 9;
  mass_rows = {2};
  EXPECT_THROW(validate_step(step(&heads), limits), Error) << "a mass row that is not Dense";
  mass_rows = {0};
  query_rows = {2, 1};
  EXPECT_THROW(validate_step(step(&heads), limits), Error) << "query rows not ascending";
  query_rows = {4};
  EXPECT_THROW(validate_step(step(&heads), limits), Error) << "a query row outside the step";
}

TEST(ValidateStep, RejectsEachBrokenRule) {
  {
    Fixture f;
    f.mode.pop_back();
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "fewer modes than rows";
  }
  {
    Fixture f;
    f.slot[3] = 4;
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "slot outside the cache";
  }
  {
    Fixture f;
    f.pos[3] = f.span.pos[3] = 256;
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "position outside the context";
  }
  {
    Fixture f;
    f.tokens[0] = 1000;
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "token outside the vocabulary";
  }
  {
    Fixture f;
    f.logit_rows = {3, 2};
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "logit rows not ascending";
    f.logit_rows = {4};
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "logit row outside the step";
  }
  {
    Fixture f;
    EXPECT_THROW(validate_step(f.step(nullptr), kLimits), Error) << "a Sparse row without a span";
    f.mode[2] = RowMode::Dense;
    EXPECT_NO_THROW(validate_step(f.step(nullptr), kLimits)) << "every row Dense: no span needed";
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "a Dense row encoded as a sparse one";
  }
  {
    Fixture f;
    f.span.pos[1] = 12;
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "span position differs from the token's";
  }
  {
    Fixture f;
    f.span.add_dense_row(3);
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "one span row too many";
  }
  {
    Fixture f;
    f.span.tail_start[2] = 13;
    EXPECT_THROW(validate_step(f.step(&f.span), kLimits), Error) << "an invalid span";
  }
  {
    Fixture f;
    EXPECT_THROW(validate_step(f.step(&f.span), {0, 0, 0}), Error) << "no KV cache";
  }
}

TEST(ValidateStep, TheCpuBackendRejectsABadStepInSetStep) {
  auto be = make_cpu_backend(1);
  be->alloc_kv_cache({1, 4, 1, 256, 8});
  Fixture f;
  EXPECT_NO_THROW(be->set_step(f.step(&f.span)));
  f.mode[2] = RowMode::Dense;
  EXPECT_THROW(be->set_step(f.step(&f.span)), Error);
}

TEST(CheckLogitsFinite, NamesTheTokenWhoseLogitsAreNotFinite) {
  Fixture f;
  LogitRowOrigins origins;
  origins.assign(f.step(&f.span));
  ASSERT_EQ(origins.pos, (std::vector<int32_t>{12, 200}));
  ASSERT_EQ(origins.slot, (std::vector<int32_t>{0, 3}));
  std::vector<float> logits(2 * 50, 0.5f);
  EXPECT_NO_THROW(check_logits_finite(logits, 50, 2, origins));
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> l = logits;
    l[50 + 17] = bad;
    try {
      check_logits_finite(l, 50, 2, origins);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("position 200 of KV slot 3"), std::string::npos) << msg;
      EXPECT_NE(msg.find("token id 17"), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace sspan
