// `window`: StreamingLLM's attention sinks plus a recent window (docs/policies.md).
// Prompt tokens are dense (causal), as under every policy; a generated token at t
// attends [0, sink) and [t + 1 - recent, t]. Positions keep their absolute RoPE angles.
#include "common/check.h"
#include "span/block_encoding.h"
#include "span/policy_options.h"

namespace sspan::span_detail {
namespace {

class WindowTracker final : public SpanTracker {
 public:
  WindowTracker(int32_t sink, int32_t recent, int block_size) : sink_(sink), recent_(recent), block_(block_size) {}

  void push(std::string_view, bool in_prompt) override {
    ++t_;
    const int32_t window_start = t_ + 1 - recent_;
    sparse_ = !in_prompt && window_start > sink_;
    attended_.clear();
    if (!sparse_) {
      attended_.push_back({0, t_ + 1});
      return;
    }
    if (sink_ > 0) attended_.push_back({0, sink_});
    attended_.push_back({window_start, t_ + 1});
  }
  int32_t last_pos() const override {
    check_pushed();
    return t_;
  }
  bool last_sparse() const override {
    check_pushed();
    return sparse_;
  }
  std::vector<PosRange> last_attended() const override {
    check_pushed();
    return attended_;
  }
  int64_t last_count() const override {
    check_pushed();
    int64_t n = 0;
    for (const PosRange& r : attended_) n += r.end - r.begin;
    return n;
  }
  void append_last(SpanBatch& batch) const override {
    check_pushed();
    SSPAN_CHECK(batch.block_size == block_, "window span: batch block size {} but the policy's is {}",
                batch.block_size, block_);
    if (sparse_)
      batch.add_attended_row(attended_, t_);
    else
      batch.add_dense_row(t_);
  }
  int block_size() const override { return block_; }
  const SpanEvents& events() const override { return events_; }

 private:
  void check_pushed() const { SSPAN_CHECK(t_ >= 0, "window span: no token pushed yet"); }

  int32_t sink_, recent_;
  int block_;
  int32_t t_ = -1;
  bool sparse_ = false;
  std::vector<PosRange> attended_;  // of the last token
  SpanEvents events_;               // a window meets no grammar events
};

class WindowPolicy final : public SpanPolicy {
 public:
  WindowPolicy(std::string name, int block_size, int32_t sink, int32_t recent)
      : SpanPolicy(std::move(name), block_size), sink_(sink), recent_(recent) {}
  std::unique_ptr<SpanTracker> start() const override {
    return std::make_unique<WindowTracker>(sink_, recent_, block_size());
  }

 private:
  int32_t sink_, recent_;
};

}  // namespace

std::shared_ptr<const SpanPolicy> make_window_policy(std::string name, int block_size, PolicyOptions& options) {
  constexpr int64_t kMax = int64_t(1) << 30;
  const int64_t sink = options.take_int("sink", 0, kMax, 4);
  const int64_t recent = options.take_int("recent", 1, kMax, 1024);
  options.expect_none_left(name, "sink=N (default 4), recent=N (default 1024) and block=N");
  return std::make_shared<WindowPolicy>(std::move(name), block_size, int32_t(sink), int32_t(recent));
}

}  // namespace sspan::span_detail
