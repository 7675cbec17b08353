// The `window` and `recycled` policies through the scheduler on the shipped arith-tiny
// model: recycled with k above the context is dense exactly (its full steps record the
// attention mass, its recycled steps go through the per-(layer, KV head) path), and
// batches mixing policies and recycled rows in different phases (full and recycled rows
// in one step) give what each request gives alone.
#include <gtest/gtest.h>

#include "runtime_fixture.h"
#include "sspan/scheduler.h"

namespace sspan {
namespace {

using test::arith_prompts;
using test::run_alone;
using test::sampled;
using test::tiny_options;

TEST(PeerPolicyRuntime, RecycledWithKAboveTheContextIsDenseExactly) {
  Engine e(tiny_options(/*batch=*/2, /*ctx=*/256));
  for (const std::string spec : {"recycled:k=100000,stride=3", "recycled:k=100000,threshold=0.99",
                                 "window:sink=4,recent=100000"}) {
    for (size_t i = 0; i < 3; ++i) {
      const GenerationResult dense = run_alone(e, sampled(arith_prompts()[i], 5 + i, 48, "dense"));
      const GenerationResult peer = run_alone(e, sampled(arith_prompts()[i], 5 + i, 48, spec));
      ASSERT_EQ(dense.ids.size(), 48u);
      EXPECT_EQ(peer.ids, dense.ids) << spec;
      EXPECT_EQ(peer.span.sparse_tokens, 0) << spec;
      EXPECT_EQ(peer.span.mean_sparsity, 0.0) << spec;
    }
  }
}

TEST(PeerPolicyRuntime, MixedBatchesGiveWhatEachRequestGivesAlone) {
  // Small steps: prompts are prefilled in chunks next to the decode rows of others.
  Engine e(tiny_options(/*batch=*/4, /*ctx=*/256, /*step_rows=*/7));
  const auto prompts = arith_prompts();
  const std::vector<std::string> specs = {"recycled:k=6,stride=3", "window:sink=2,recent=12", "arith",
                                          "recycled:k=4,stride=5,block=16", "dense", "recycled:k=8,threshold=0.97",
                                          "window:sink=0,recent=5,block=32", "recycled:k=3,stride=2"};
  std::vector<Request> requests;
  for (size_t i = 0; i < specs.size(); ++i)
    requests.push_back(sampled(prompts[i], 100 + i, 20 + 7 * int(i % 3), specs[i]));
  std::vector<GenerationResult> single;
  for (const Request& r : requests) single.push_back(run_alone(e, r));

  Scheduler s(e);
  std::vector<RequestHandle> handles;
  for (const Request& r : requests) handles.push_back(s.submit(r));
  s.run_until_idle();
  for (size_t i = 0; i < requests.size(); ++i) {
    const GenerationResult& busy = handles[i].wait();
    EXPECT_EQ(busy.ids, single[i].ids) << specs[i];
    EXPECT_EQ(busy.span.sparse_tokens, single[i].span.sparse_tokens) << specs[i];
    EXPECT_DOUBLE_EQ(busy.span.mean_sparsity, single[i].span.mean_sparsity) << specs[i];
    if (specs[i].starts_with("recycled:k=4") || specs[i].starts_with("window:sink=0")) {
      EXPECT_GT(busy.span.mean_sparsity, 0.0) << specs[i] << " attends fewer keys than dense";
    }
  }
}

}  // namespace
}  // namespace sspan
