// `recycled`: Recycled Attention (Xu, Goyal, Choi 2024; docs/policies.md). A full step
// attends [0, t] and records, per (layer, KV head), the attention mass of every key; the
// recycled steps after it attend, per (layer, KV head), the top-k keys of that record plus
// every position since the full step. A full step comes on the first generated token,
// every `stride` tokens after the last full one, and (with `threshold`) whenever the
// last recorded query's cosine similarity to the full step's query fell below threshold.
// Prompt tokens are dense (causal), as under every policy.
#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "span/block_encoding.h"
#include "span/policy_options.h"
#include "span/top_keys.h"

namespace sspan::span_detail {
namespace {

struct RecycledOptions {
  int32_t k = 256;
  int32_t stride = 0;       // 0: no periodic full step
  double threshold = -1.0;  // < 0: no query test
  int block = 64;
};

double cosine(std::span<const float> a, std::span<const float> b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

class RecycledTracker final : public SpanTracker {
 public:
  explicit RecycledTracker(const RecycledOptions& o) : o_(o) {}

  void push(std::string_view, bool in_prompt) override {
    ++t_;
    if (in_prompt) {
      mode_ = Mode::Dense;
    } else if (mass_pending_) {
      mode_ = Mode::Dense;  // the full step's record is not back yet (rows of one step)
    } else if (needs_full()) {
      mode_ = Mode::Full;
      full_pos_ = t_;
      mass_pending_ = true;
    } else {
      mode_ = Mode::Recycled;
    }
  }
  int32_t last_pos() const override {
    check_pushed();
    return t_;
  }
  bool last_sparse() const override { return last_count() < int64_t(t_) + 1; }
  bool last_per_head() const override {
    check_pushed();
    return mode_ == Mode::Recycled;
  }
  std::vector<PosRange> last_attended() const override {
    check_pushed();
    if (mode_ != Mode::Recycled) return {{0, t_ + 1}};
    std::vector<int32_t> keys;
    for (const auto& h : heads_) keys.insert(keys.end(), h.begin(), h.end());
    std::sort(keys.begin(), keys.end());
    std::vector<PosRange> out;
    for (const int32_t p : keys) append_merged(out, {p, p + 1});
    append_merged(out, {full_pos_ + 1, t_ + 1});
    return out;
  }
  // Every (layer, KV head) keeps min(k, full_pos + 1) keys: the mean is that count.
  int64_t last_count() const override {
    check_pushed();
    if (mode_ != Mode::Recycled) return int64_t(t_) + 1;
    return int64_t(heads_.front().size()) + (t_ - full_pos_);
  }
  void append_last(SpanBatch& batch) const override {
    check_pushed();
    SSPAN_CHECK(mode_ != Mode::Recycled, "recycled span: position {} differs per layer and head "
                "(append_last_heads)", t_);
    batch.add_dense_row(t_);
  }
  void append_last_heads(SpanBatch& heads) const override {
    SSPAN_CHECK(last_per_head(), "recycled span: position {} is dense", t_);
    for (const auto& ranges : head_ranges_) heads.add_row(ranges, full_pos_ + 1, t_);
  }
  bool wants_mass() const override { return t_ >= 0 && mode_ == Mode::Full; }
  void take_mass(int32_t pos, std::span<const float> mass, int layers, int kv_heads) override {
    check_record(pos, layers, kv_heads);
    const size_t keys = size_t(pos) + 1, heads = size_t(layers) * size_t(kv_heads);
    SSPAN_CHECK(mass.size() == heads * keys,
                "recycled span: attention mass of {} values for {} layers x {} KV heads x {} keys", mass.size(), layers,
                kv_heads, keys);
    heads_.resize(heads);
    for (size_t h = 0; h < heads; ++h) top_k_keys(mass.subspan(h * keys, keys), o_.k, order_, heads_[h]);
    keys_taken();
  }
  int32_t mass_top_k() const override { return o_.k; }
  void take_top_keys(int32_t pos, std::span<const int32_t> keys, int layers, int kv_heads) override {
    check_record(pos, layers, kv_heads);
    const size_t heads = size_t(layers) * size_t(kv_heads), kept = std::min<size_t>(size_t(o_.k), size_t(pos) + 1);
    SSPAN_CHECK(keys.size() == heads * kept, "recycled span: {} top keys for {} layers x {} KV heads x {} keys",
                keys.size(), layers, kv_heads, kept);
    heads_.resize(heads);
    for (size_t h = 0; h < heads; ++h) {
      const auto mine = keys.subspan(h * kept, kept);
      for (size_t j = 0; j < kept; ++j)
        SSPAN_CHECK(mine[j] >= 0 && mine[j] <= pos && (j == 0 || mine[j] > mine[j - 1]),
                    "recycled span: top key {} of (layer, KV head) {} is {} (keys must ascend within [0, {}])", j, h,
                    mine[j], pos);
      heads_[h].assign(mine.begin(), mine.end());
    }
    keys_taken();
  }
  bool wants_query() const override { return t_ >= 0 && o_.threshold >= 0 && mode_ != Mode::Dense; }
  void take_query(int32_t pos, std::span<const float> query) override {
    last_query_.assign(query.begin(), query.end());
    if (pos == full_pos_) full_query_ = last_query_;
  }
  int block_size() const override { return o_.block; }
  const SpanEvents& events() const override { return events_; }

 private:
  enum class Mode { Dense, Full, Recycled };
  void check_pushed() const { SSPAN_CHECK(t_ >= 0, "recycled span: no token pushed yet"); }
  // A record (mass or top keys) of the full step at `pos` is what this tracker awaits.
  void check_record(int32_t pos, int layers, int kv_heads) const {
    SSPAN_CHECK(mass_pending_ && pos == full_pos_, "recycled span: attention record of position {} but the full step "
                "awaiting it is at {}", pos, full_pos_);
    SSPAN_CHECK(layers > 0 && kv_heads > 0, "recycled span: a record of {} layers x {} KV heads", layers, kv_heads);
  }
  // heads_ holds the full step's keys: their ranges, and the record is in.
  void keys_taken() {
    head_ranges_.resize(heads_.size());
    for (size_t h = 0; h < heads_.size(); ++h) {
      head_ranges_[h].clear();
      for (const int32_t p : heads_[h]) append_merged(head_ranges_[h], {p, p + 1});
    }
    mass_pending_ = false;
  }
  bool needs_full() const {
    if (full_pos_ < 0 || heads_.empty()) return true;
    if (o_.stride > 0 && t_ - full_pos_ >= o_.stride) return true;
    return o_.threshold >= 0 && !full_query_.empty() && last_query_.size() == full_query_.size() &&
           cosine(last_query_, full_query_) < o_.threshold;
  }

  RecycledOptions o_;
  int32_t t_ = -1;
  Mode mode_ = Mode::Dense;
  int32_t full_pos_ = -1;     // the last full step
  bool mass_pending_ = false;  // its attention mass has not come back yet
  std::vector<std::vector<int32_t>> heads_;      // [layers * kv heads] top-k keys, ascending
  std::vector<std::vector<PosRange>> head_ranges_;  // the same as merged ranges
  std::vector<float> full_query_, last_query_;   // [head_dim]
  std::vector<int32_t> order_;                   // scratch of top_k_keys
  SpanEvents events_;
};

class RecycledPolicy final : public SpanPolicy {
 public:
  RecycledPolicy(std::string name, const RecycledOptions& o) : SpanPolicy(std::move(name), o.block), o_(o) {}
  std::unique_ptr<SpanTracker> start() const override { return std::make_unique<RecycledTracker>(o_); }
  bool needs_attention_record() const override { return true; }

 private:
  RecycledOptions o_;
};

}  // namespace

std::shared_ptr<const SpanPolicy> make_recycled_policy(std::string name, int block_size, PolicyOptions& options) {
  constexpr int64_t kMax = int64_t(1) << 30;
  RecycledOptions o;
  o.block = block_size;
  o.k = int32_t(options.take_int("k", 1, kMax, 256));
  const auto threshold = options.take_real("threshold", 0.0, 1.0);
  const auto stride = options.take_int("stride", 1, kMax);
  if (threshold) o.threshold = *threshold;
  o.stride = int32_t(stride.value_or(threshold ? 0 : 16));  // threshold alone: no periodic full step
  options.expect_none_left(name, "k=N (default 256), stride=N (default 16), threshold=X in [0, 1] and block=N");
  return std::make_shared<RecycledPolicy>(std::move(name), o);
}

}  // namespace sspan::span_detail
