// The scheduler on the shipped arith-tiny model: per-request seeds are independent of the
// batch, cancellation frees the slot within a step, a reused slot equals a fresh engine,
// the queue is first in first out, stop strings and teacher forcing behave as documented.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime_fixture.h"
#include "sspan/error.h"
#include "sspan/scheduler.h"

namespace sspan {
namespace {

using test::arith_prompts;
using test::run_alone;
using test::sampled;
using test::tiny_options;

TEST(Scheduler, ASeededRequestGivesTheSameTokensAloneAndInABusyRefilledBatch) {
  // Small steps: prompts are prefilled in chunks mixed with the decode rows of others.
  Engine e(tiny_options(/*batch=*/3, /*ctx=*/256, /*step_rows=*/6));
  const auto prompts = arith_prompts();
  const Request target = sampled(prompts[0], 1234, 40);
  const GenerationResult alone = run_alone(e, target);
  ASSERT_EQ(alone.ids.size(), 40u);
  // Another seed gives another continuation.
  EXPECT_NE(run_alone(e, sampled(prompts[0], 99, 40)).ids, alone.ids);

  Scheduler s(e);
  std::vector<RequestHandle> others;
  // Busy neighbours of different lengths and policies, so slots free and refill around it.
  for (int i = 1; i <= 4; ++i)
    others.push_back(s.submit(sampled(prompts[size_t(i)], 77 + uint64_t(i), 5 + 9 * i, i % 2 ? "dense" : "arith")));
  auto h = s.submit(target);
  for (int i = 5; i <= 8; ++i) others.push_back(s.submit(sampled(prompts[size_t(i)], 7 + uint64_t(i), 3 + 5 * i)));
  s.run_until_idle();
  const GenerationResult& busy = h.wait();
  EXPECT_EQ(busy.ids, alone.ids);
  EXPECT_EQ(busy.text, alone.text);
  EXPECT_EQ(busy.span.sparse_tokens, alone.span.sparse_tokens);
  EXPECT_GT(busy.stats.admitted_step, 0) << "the target must join a batch already running";
  for (auto& o : others) EXPECT_EQ(o.wait().stop, StopReason::Length);
}

TEST(Scheduler, CancellingFromTheCallbackFreesTheSlotForTheNextStep) {
  Engine e(tiny_options(/*batch=*/1));
  Scheduler s(e);
  Request first = sampled(arith_prompts()[0], 1, 200);
  int seen = 0;
  first.on_token = [&](const TokenEvent&) { return ++seen < 5; };
  auto a = s.submit(std::move(first));
  auto b = s.submit(sampled(arith_prompts()[1], 2, 3));
  s.run_until_idle();
  const auto& ra = a.wait();
  EXPECT_EQ(ra.stop, StopReason::Cancelled);
  EXPECT_EQ(ra.ids.size(), 5u);
  const auto& rb = b.wait();
  EXPECT_EQ(rb.stop, StopReason::Length);
  EXPECT_EQ(rb.stats.admitted_step, ra.stats.finished_step + 1) << "the freed slot is taken at the next step";
  EXPECT_EQ(s.stats().cancelled, 1);
}

TEST(Scheduler, CancellingAHandleEndsTheRequestAtTheNextStep) {
  Engine e(tiny_options(/*batch=*/2));
  Scheduler s(e);
  auto a = s.submit(sampled(arith_prompts()[0], 1, 200));
  auto queued = s.submit(sampled(arith_prompts()[1], 2, 200));
  auto waiting = s.submit(sampled(arith_prompts()[2], 3, 4));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s.step());
  EXPECT_EQ(a.status(), RequestStatus::Running);
  a.cancel();
  queued.cancel();
  ASSERT_TRUE(s.step());
  EXPECT_TRUE(a.done());
  EXPECT_EQ(a.wait().stop, StopReason::Cancelled);
  EXPECT_EQ(queued.wait().stop, StopReason::Cancelled);
  EXPECT_EQ(waiting.status(), RequestStatus::Running) << "the freed slot went to the next in the queue";
  s.run_until_idle();
  EXPECT_EQ(waiting.wait().ids.size(), 4u);
}

TEST(Scheduler, ASlotReusedAfterALongSequenceGivesWhatAFreshEngineGives) {
  const Request probe = sampled(arith_prompts()[3], 5, 30, "arith");
  Engine fresh(tiny_options(/*batch=*/1));
  const auto expected = run_alone(fresh, probe);

  Engine used(tiny_options(/*batch=*/1));
  Request longer = sampled(arith_prompts()[0], 8, 200, "dense");
  const auto first = run_alone(used, longer);
  ASSERT_EQ(first.ids.size(), 200u);
  const auto again = run_alone(used, probe);
  EXPECT_EQ(again.ids, expected.ids);
  EXPECT_EQ(again.text, expected.text);
}

TEST(Scheduler, TheQueueIsFirstInFirstOutAndLongRequestsDoNotStarveShortOnes) {
  Engine e(tiny_options(/*batch=*/2, /*ctx=*/256, /*step_rows=*/8));
  Scheduler s(e);
  std::vector<RequestHandle> hs;
  hs.push_back(s.submit(sampled(arith_prompts()[0], 1, 150)));  // holds a slot throughout
  for (int i = 1; i < 8; ++i) hs.push_back(s.submit(sampled(arith_prompts()[size_t(i)], uint64_t(i), 4 + i)));
  s.run_until_idle();
  int64_t last_admitted = -1;
  for (auto& h : hs) {
    const auto& r = h.wait();
    EXPECT_GE(r.stats.admitted_step, last_admitted) << "request " << h.id() << " was admitted out of order";
    last_admitted = r.stats.admitted_step;
  }
  // Every short request went through the second slot while the long one ran.
  EXPECT_LT(hs.back().wait().stats.finished_step, hs.front().wait().stats.finished_step);
  EXPECT_EQ(s.stats().finished, 8);
}

TEST(Scheduler, StopStringsEndTheTextBeforeThemAndNothingPastThemIsStreamed) {
  Engine e(tiny_options(/*batch=*/1));
  Request greedy;
  greedy.prompt = arith_prompts()[0];
  greedy.options.max_new_tokens = 60;
  const auto full = run_alone(e, greedy);
  const size_t cut = full.text.find("[1]");
  ASSERT_NE(cut, std::string::npos) << full.text;

  Request stopping = greedy;
  stopping.options.stop = {"[1]", "never appears"};
  std::string streamed;
  stopping.on_token = [&](const TokenEvent& ev) {
    streamed += ev.text;
    return true;
  };
  const auto r = run_alone(e, stopping);
  EXPECT_EQ(r.stop, StopReason::StopString);
  EXPECT_EQ(r.text, full.text.substr(0, cut));
  EXPECT_EQ(streamed, r.text);
}

TEST(Scheduler, TeacherForcingFeedsTheForcedIdsAndScoresThemAsScoringDoes) {
  Engine e(tiny_options(/*batch=*/2));
  const std::string prompt = arith_prompts()[0];
  const std::string completion = "[-1] 7 - 6=1 [1]\n[0,1] 1 / 1=1 [2]\n";
  const auto forced = e.tokenizer().encode_continuation(completion);

  Request r;
  r.prompt = prompt;
  r.forced.assign(forced.begin(), forced.end());
  r.options.max_new_tokens = 1000;
  r.options.span.policy = "arith";
  r.options.logprobs = true;
  r.options.sampling = {.temperature = 1.f, .seed = 3};  // the sampler runs, its choice is replaced
  std::vector<TraceRecord> replay_trace, score_trace;
  r.on_trace = [&](const TraceRecord& t) { replay_trace.push_back(t); };
  const auto g = run_alone(e, r);
  EXPECT_EQ(g.stop, StopReason::Forced);
  EXPECT_EQ(g.ids, forced);
  EXPECT_EQ(g.text, completion);

  GenerateCallbacks cb;
  cb.on_trace = [&](const TraceRecord& t) { score_trace.push_back(t); };
  const auto s = e.score(prompt, completion, {"arith", 64}, cb);
  ASSERT_EQ(s.tokens.size(), g.logprobs.size());
  for (size_t k = 0; k < s.tokens.size(); ++k) {
    EXPECT_EQ(s.tokens[k].id, g.logprobs[k].id);
    EXPECT_NEAR(s.tokens[k].logprob, g.logprobs[k].logprob, 1e-5) << "token " << k;
  }
  ASSERT_EQ(replay_trace.size(), score_trace.size());
  for (size_t p = 0; p < score_trace.size(); ++p) {
    EXPECT_EQ(replay_trace[p].pos, score_trace[p].pos);
    EXPECT_EQ(replay_trace[p].id, score_trace[p].id);
    EXPECT_EQ(replay_trace[p].attended, score_trace[p].attended) << "position " << p;
    EXPECT_EQ(replay_trace[p].sparse, score_trace[p].sparse);
  }
  EXPECT_EQ(g.span.sparse_tokens, s.span.sparse_tokens);
  EXPECT_GT(s.span.sparse_tokens, 0);
}

TEST(Scheduler, AStreamedTokenCarriesTheSparsityOfTheRowThatChoseIt) {
  Engine e(tiny_options(/*batch=*/2));
  for (const char* policy : {"arith", "window:sink=2,recent=8"}) {
    SCOPED_TRACE(policy);
    Request r = sampled(arith_prompts()[3], 5, 60, policy);
    r.options.sampling.temperature = 0;  // greedy: the model's own trace, whose lines the span skips
    std::vector<double> streamed, traced;  // by token index; by position
    r.on_token = [&](const TokenEvent& ev) {
      if (ev.id >= 0) streamed.push_back(ev.sparsity);
      return true;
    };
    r.on_trace = [&](const TraceRecord& t) { traced.push_back(t.sparsity); };
    const GenerationResult g = run_alone(e, std::move(r));
    ASSERT_EQ(streamed.size(), 60u);
    const size_t P = g.prompt_ids.size();
    ASSERT_EQ(traced.size(), P + 59);  // the last token is chosen, not processed
    EXPECT_EQ(streamed[0], 0.0);       // chosen by the last prompt row, which is dense
    double sum = 0;
    for (size_t k = 1; k < streamed.size(); ++k) {
      EXPECT_EQ(streamed[k], traced[P + k - 1]) << "token " << k;
      sum += streamed[k];
    }
    EXPECT_GT(sum, 0.5) << "the policy dropped keys";
    EXPECT_NEAR(sum / 59, g.span.mean_sparsity, 1e-12);
  }
}

TEST(Scheduler, BadRequestsAreErrorsAtSubmit) {
  Engine e(tiny_options(/*batch=*/1, /*ctx=*/32));
  Scheduler s(e, {.max_queued = 2});
  Request r;
  r.prompt = std::string(200, '1');
  EXPECT_THAT([&] { s.submit(r); }, ::testing::ThrowsMessage<Error>(::testing::HasSubstr("context holds 32")));
  r.prompt = "1 + 1 [0]\n";
  r.options.span.policy = "nonsense";
  EXPECT_THROW(s.submit(r), Error);
  r.options.span.policy = "arith:block=48";
  EXPECT_THROW(s.submit(r), Error);
  r.options.span.policy = "arith:block=32";
  r.options.max_new_tokens = -1;
  EXPECT_THROW(s.submit(r), Error);
  r.options.max_new_tokens = 4;
  r.options.sampling.min_p = 2.f;
  EXPECT_THROW(s.submit(r), Error);
  r.options.sampling.min_p = 0.f;
  r.prompt_ids = {1, 5000};
  EXPECT_THROW(s.submit(r), Error);
  r.prompt_ids.clear();
  s.submit(r);
  s.submit(r);
  EXPECT_THROW(s.submit(r), QueueFullError);
  s.run_until_idle();
  EXPECT_EQ(s.stats().finished, 2);
}

TEST(Scheduler, ABackgroundThreadServesRequestsFromOtherThreads) {
  Engine e(tiny_options(/*batch=*/2));
  Scheduler s(e);
  s.start();
  std::vector<RequestHandle> hs;
  for (int i = 0; i < 4; ++i) hs.push_back(s.submit(sampled(arith_prompts()[size_t(i)], uint64_t(i), 6)));
  for (auto& h : hs) EXPECT_EQ(h.wait().ids.size(), 6u);
  s.stop();
  EXPECT_THROW(Scheduler{e}, Error) << "one scheduler per engine";
}

}  // namespace
}  // namespace sspan
