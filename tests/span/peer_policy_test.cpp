// The grammar-free policies `window` and `recycled`: their option grammar and errors,
// the list syntax of command lines, and the window's attended set and blocked encoding
// (recycled's spans need the attention op: tests/model/attention_mass_test.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <random>

#include "sspan/error.h"
#include "sspan/span.h"

namespace sspan {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

TEST(PeerPolicies, OptionsAndDefaultsParse) {
  EXPECT_EQ(SpanPolicy::parse("window")->name(), "window");
  EXPECT_EQ(SpanPolicy::parse("window:sink=0,recent=8,block=16")->block_size(), 16);
  const auto r = SpanPolicy::parse("recycled:k=4,stride=2", 32);
  EXPECT_EQ(r->name(), "recycled");
  EXPECT_EQ(r->block_size(), 32);
  EXPECT_TRUE(r->needs_attention_record());
  EXPECT_FALSE(SpanPolicy::parse("window:recent=8")->needs_attention_record());
  EXPECT_FALSE(SpanPolicy::parse("arith")->needs_attention_record());
  EXPECT_NO_THROW(SpanPolicy::parse("recycled:k=256,threshold=0.9"));
  EXPECT_NO_THROW(SpanPolicy::parse("recycled:threshold=1,stride=32"));
}

TEST(PeerPolicies, MalformedOptionsAreErrorsThatSayWhat) {
  const auto fails = [](const char* spec, const char* what) {
    EXPECT_THAT([&] { SpanPolicy::parse(spec); }, ThrowsMessage<Error>(HasSubstr(what))) << spec;
  };
  fails("window:size=4", "unknown option 'size' (policy 'window' takes sink=N");
  fails("window:recent=abc", "recent must be an integer, got 'abc'");
  fails("window:recent=1.5", "recent must be an integer");
  fails("window:sink=-1", "sink must be in [0,");
  fails("window:recent=0", "recent must be in [1,");
  fails("window:recent=", "not key=value");
  fails("window:recent", "not key=value");
  fails("window:recent=4,", "empty option after ','");
  fails("window:recent=4,recent=8", "given twice");
  fails("window:block=48", "block must be");
  fails("recycled:k=0", "k must be in [1,");
  fails("recycled:k=ten", "k must be an integer");
  fails("recycled:stride=-2", "stride must be in [1,");
  fails("recycled:threshold=1.5", "threshold must be in [0, 1]");
  fails("recycled:threshold=nan", "threshold must be a number");
  fails("recycled:topk=3", "unknown option 'topk' (policy 'recycled' takes k=N");
  // Neither combines with a grammar; a grammar policy takes no window or recycled options.
  fails("window:grammar=arith", "'window' combines with no grammar");
  fails("recycled:grammar=summary", "'recycled' combines with no grammar");
  fails("arith:recent=16", "unknown option 'recent' (policy 'arith' takes block=N)");
  fails("summary:k=16", "unknown option 'k'");
  fails("arith+window", "unknown span policy 'arith+window'");
}

TEST(PeerPolicies, AListKeepsEachPolicysOptionsWithIt) {
  EXPECT_EQ(SpanPolicy::split_list("dense,arith,window:recent=256,recycled:k=64,stride=16"),
            (std::vector<std::string>{"dense", "arith", "window:recent=256", "recycled:k=64,stride=16"}));
  EXPECT_EQ(SpanPolicy::split_list("recycled:k=256,stride=16,window:sink=2,recent=8,block=16,dense"),
            (std::vector<std::string>{"recycled:k=256,stride=16", "window:sink=2,recent=8,block=16", "dense"}));
  EXPECT_EQ(SpanPolicy::split_list("arith"), (std::vector<std::string>{"arith"}));
  EXPECT_THAT([] { SpanPolicy::split_list("dense,,arith"); }, ThrowsMessage<Error>(HasSubstr("empty item")));
}

// The window's attended set by its definition: prompt rows [0, t]; a generated row
// [0, sink) and [t + 1 - recent, t], merged.
std::vector<PosRange> window_reference(int32_t t, bool in_prompt, int32_t sink, int32_t recent) {
  std::vector<bool> in(size_t(t) + 1, in_prompt);
  for (int32_t p = 0; p <= t; ++p)
    if (p < sink || p > t - recent) in[size_t(p)] = true;
  std::vector<PosRange> out;
  for (int32_t p = 0; p <= t; ++p) {
    if (!in[size_t(p)]) continue;
    if (!out.empty() && out.back().end == p)
      ++out.back().end;
    else
      out.push_back({p, p + 1});
  }
  return out;
}

TEST(PeerPolicies, TheWindowAttendsSinksAndTheRecentPositionsInEveryBlockSize) {
  std::mt19937 rng(7);
  for (const int block : {16, 32, 64, 128, 256}) {
    for (int trial = 0; trial < 12; ++trial) {
      const int32_t sink = int32_t(rng() % 6), recent = 1 + int32_t(rng() % 300);
      const int32_t prompt = 1 + int32_t(rng() % 200), generated = 1 + int32_t(rng() % 500);
      const auto policy = SpanPolicy::parse(fmt::format("window:sink={},recent={},block={}", sink, recent, block));
      auto tr = policy->start();
      SpanBatch batch;
      batch.reset(block);
      for (int32_t t = 0; t < prompt + generated; ++t) {
        const bool in_prompt = t < prompt;
        tr->push(t == 0 ? "" : "x", in_prompt);
        const auto want = window_reference(t, in_prompt, sink, recent);
        ASSERT_EQ(tr->last_attended(), want) << "t=" << t << " sink=" << sink << " recent=" << recent;
        int64_t count = 0;
        for (const PosRange& r : want) count += r.end - r.begin;
        ASSERT_EQ(tr->last_count(), count);
        ASSERT_EQ(tr->last_sparse(), count < t + 1);
        EXPECT_FALSE(tr->last_per_head());
        EXPECT_FALSE(tr->wants_mass());
        tr->append_last(batch);
        ASSERT_EQ(batch.row_ranges(batch.rows() - 1), want) << "block " << block << " t=" << t;
        ASSERT_EQ(batch.row_count(batch.rows() - 1), count);
        ASSERT_EQ(batch.row_is_dense(batch.rows() - 1), !tr->last_sparse());
      }
      batch.validate();
    }
  }
}

// A made-up record for `recycled` at position t: L x Hkv heads, key j of head h weighing
// (j * 7 + h) % (t + 1), so each head has its own top-k.
std::vector<float> fake_mass(int32_t t, int heads) {
  std::vector<float> m(size_t(heads) * (size_t(t) + 1));
  for (int h = 0; h < heads; ++h)
    for (int32_t j = 0; j <= t; ++j) m[size_t(h) * (size_t(t) + 1) + size_t(j)] = float((j * 7 + h) % (t + 1));
  return m;
}

TEST(PeerPolicies, RecycledRunsAFullStepWhenTheQueryDrifts) {
  auto tr = SpanPolicy::parse("recycled:k=2,threshold=0.9")->start();
  for (int i = 0; i < 5; ++i) tr->push("x", true);
  EXPECT_FALSE(tr->wants_query()) << "prompt rows record nothing";
  const std::vector<float> q0{1.f, 0.f, 0.f, 1.f}, same{2.f, 0.1f, 0.f, 2.f}, turned{0.f, 1.f, 1.f, 0.f};
  tr->push("y", false);  // t = 5: the first generated token is a full step
  ASSERT_TRUE(tr->wants_mass());
  ASSERT_TRUE(tr->wants_query());
  tr->take_mass(5, fake_mass(5, 2), 1, 2);
  tr->take_query(5, q0);
  tr->push("y", false);  // t = 6: recycled
  ASSERT_TRUE(tr->last_per_head());
  ASSERT_TRUE(tr->wants_query());
  SpanBatch heads;
  heads.reset(16);
  tr->append_last_heads(heads);
  // Head 0 weighs key j as 7j % 6 = j: its top 2 are keys 4 and 5; head 1 as
  // (j + 1) % 6: keys 4 (weight 5) and 3 (4). Both add position 6, after the full step.
  EXPECT_EQ(heads.row_ranges(0), (std::vector<PosRange>{{4, 7}}));
  EXPECT_EQ(heads.row_ranges(1), (std::vector<PosRange>{{3, 5}, {6, 7}}));
  EXPECT_EQ(tr->last_count(), 3);
  EXPECT_EQ(tr->last_attended(), (std::vector<PosRange>{{3, 7}}));
  tr->take_query(6, same);  // similar: stays recycled, no stride
  for (int t = 7; t < 40; ++t) {
    tr->push("y", false);
    ASSERT_TRUE(tr->last_per_head()) << "t=" << t;
    tr->take_query(t, same);
  }
  tr->take_query(39, turned);  // cosine 0 < 0.9: the next token is a full step
  tr->push("y", false);
  EXPECT_TRUE(tr->wants_mass());
  EXPECT_FALSE(tr->last_per_head());
  EXPECT_EQ(tr->last_count(), 41);
  // A second row before the record is back (rows of one step) is dense and asks nothing.
  tr->push("y", false);
  EXPECT_FALSE(tr->wants_mass());
  EXPECT_FALSE(tr->last_per_head());
  EXPECT_FALSE(tr->last_sparse());
  EXPECT_THROW(tr->take_mass(41, fake_mass(41, 2), 1, 2), Error) << "the record awaited is position 40's";
  EXPECT_THROW(tr->take_mass(40, fake_mass(40, 2), 2, 2), Error) << "wrong head count";
  EXPECT_FALSE(SpanPolicy::parse("recycled:k=2,stride=4")->start()->wants_query());
}

// The top keys selected where the mass lives (Backend::read_attention_top_k) give the spans
// the whole mass gives; malformed key lists are errors.
TEST(PeerPolicies, RecycledTakesTopKeysAsItTakesTheMass) {
  const auto policy = SpanPolicy::parse("recycled:k=2,stride=4");
  auto from_mass = policy->start(), from_keys = policy->start();
  for (auto* tr : {&from_mass, &from_keys}) {
    for (int i = 0; i < 5; ++i) (*tr)->push("x", true);
    (*tr)->push("y", false);  // t = 5: full
  }
  EXPECT_EQ(from_keys->mass_top_k(), 2);
  EXPECT_EQ(SpanPolicy::parse("window:recent=4")->start()->mass_top_k(), 0);
  from_mass->take_mass(5, fake_mass(5, 2), 1, 2);
  // Head 0's top 2 (see above) are keys 4 and 5, head 1's keys 3 and 4.
  EXPECT_THAT([&] { from_keys->take_top_keys(5, std::vector<int32_t>{5, 4, 3, 4}, 1, 2); },
              ThrowsMessage<Error>(HasSubstr("keys must ascend")));
  EXPECT_THAT([&] { from_keys->take_top_keys(5, std::vector<int32_t>{4, 6, 3, 4}, 1, 2); },
              ThrowsMessage<Error>(HasSubstr("keys must ascend within [0, 5]")));
  EXPECT_THAT([&] { from_keys->take_top_keys(5, std::vector<int32_t>{4, 5, 3}, 1, 2); },
              ThrowsMessage<Error>(HasSubstr("3 top keys for 1 layers x 2 KV heads x 2")));
  from_keys->take_top_keys(5, std::vector<int32_t>{4, 5, 3, 4}, 1, 2);
  for (int t = 6; t < 9; ++t) {
    SpanBatch a, b;
    a.reset(16);
    b.reset(16);
    from_mass->push("y", false);
    from_keys->push("y", false);
    from_mass->append_last_heads(a);
    from_keys->append_last_heads(b);
    EXPECT_EQ(a.block_ids, b.block_ids) << "t=" << t;
    EXPECT_EQ(a.masks, b.masks) << "t=" << t;
    EXPECT_EQ(a.tail_start, b.tail_start) << "t=" << t;
    EXPECT_EQ(from_keys->last_count(), from_mass->last_count());
  }
}

}  // namespace
}  // namespace sspan
