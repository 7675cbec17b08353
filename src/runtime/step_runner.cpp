#include "runtime/step_runner.h"

#include <algorithm>

#include "common/check.h"

namespace sspan {

StepRunner::StepRunner(LlamaModel& model, const Tokenizer* tok, int32_t bos_id, int slots, int max_ctx, int max_rows)
    : model_(model),
      tok_(tok),
      vocab_(tok ? tok->vocab_size() : model.config().vocab_size),
      bos_id_(bos_id),
      max_ctx_(max_ctx),
      max_rows_(max_rows) {
  SSPAN_CHECK(max_rows <= model.max_rows() && max_rows <= model.max_logit_rows(),
              "step runner: {} rows but the model's buffers hold {}", max_rows, model.max_rows());
  lengths_.assign(size_t(slots), 0);
  next_pos_.assign(size_t(slots), 0);
  for (auto* v : {&tokens_, &pos_, &slot_, &logit_rows_}) v->reserve(size_t(max_rows));
  mode_.reserve(size_t(max_rows));
  span_.indptr.reserve(size_t(max_rows) + 1);
  span_.tail_start.reserve(size_t(max_rows));
  span_.pos.reserve(size_t(max_rows));
  logits_.resize(size_t(max_rows) * size_t(model.config().vocab_size));
}

int32_t StepRunner::length(int slot) const {
  SSPAN_CHECK(slot >= 0 && slot < slots(), "KV slot {} outside [0, {})", slot, slots());
  return lengths_[size_t(slot)];
}

void StepRunner::truncate(int slot, int32_t length) {
  SSPAN_CHECK(slot >= 0 && slot < slots(), "KV slot {} outside [0, {})", slot, slots());
  SSPAN_CHECK(length >= 0 && length <= lengths_[size_t(slot)], "KV slot {} holds {} positions; cannot truncate to {}",
              slot, lengths_[size_t(slot)], length);
  lengths_[size_t(slot)] = length;
}

void StepRunner::begin(int block_size) {
  tokens_.clear();
  pos_.clear();
  slot_.clear();
  mode_.clear();
  logit_rows_.clear();
  span_.reset(block_size);
  head_span_.reset(block_size);
  mass_rows_.clear();
  query_rows_.clear();
  mass_trackers_.clear();
  query_trackers_.clear();
  std::copy(lengths_.begin(), lengths_.end(), next_pos_.begin());
}

// Row `index` of the step: its slot, position and token, and the tracker it names.
void StepRunner::check(const StepRow& r, size_t index) {
  SSPAN_CHECK(tokens_.size() < size_t(max_rows_), "a step takes at most {} rows", max_rows_);
  SSPAN_CHECK(r.slot >= 0 && r.slot < slots(), "step row {}: KV slot {} outside [0, {})", index, r.slot, slots());
  const int32_t next = next_pos_[size_t(r.slot)];
  SSPAN_CHECK(r.pos == next, "step row {}: position {} in KV slot {}, which expects position {} next", index, r.pos,
              r.slot, next);
  SSPAN_CHECK(r.pos < max_ctx_, "step row {}: position {} is beyond the context of {} positions", index, r.pos,
              max_ctx_);
  SSPAN_CHECK(r.token >= 0 && r.token < vocab_, "step row {}: token id {} outside the {} vocabulary of {}", index,
              r.token, tok_ ? "tokenizer's" : "model's", vocab_);
  if (r.span.mode == RowSpan::Mode::Tracker)
    SSPAN_CHECK(r.span.tracker != nullptr, "step row {}: span mode Tracker without a tracker", index);
}

// The row's span as one more row of the step's SpanBatch, and its mode: explicit ranges
// are Sparse, a tracker's row is what the span rule decided. A tracker whose block size is
// not the step's is re-encoded from its attended ranges (same keys, another layout).
RowMode StepRunner::add_span(const StepRow& row) {
  switch (row.span.mode) {
    case RowSpan::Mode::Dense: span_.add_dense_row(row.pos); return RowMode::Dense;
    case RowSpan::Mode::Ranges: span_.add_attended_row(row.span.ranges, row.pos); return RowMode::Sparse;
    case RowSpan::Mode::Tracker: {
      SpanTracker& t = *row.span.tracker;
      t.push(token_text(row.token), row.span.in_prompt);
      SSPAN_CHECK(t.last_pos() == row.pos, "step row at position {}: its span tracker is at position {}", row.pos,
                  t.last_pos());
      const int32_t index = int32_t(tokens_.size());
      if (t.wants_mass()) {
        mass_rows_.push_back(index);
        mass_trackers_.push_back(&t);
      }
      if (t.wants_query()) {
        query_rows_.push_back(index);
        query_trackers_.push_back(&t);
      }
      if (t.last_per_head()) {
        span_.add_dense_row(row.pos);
        t.append_last_heads(head_span_);
        return RowMode::PerHead;
      }
      if (!t.last_sparse()) {
        span_.add_dense_row(row.pos);
        return RowMode::Dense;
      }
      if (t.block_size() == span_.block_size) {
        t.append_last(span_);
      } else {
        const auto attended = t.last_attended();
        span_.add_attended_row(attended, row.pos);
      }
      return RowMode::Sparse;
    }
  }
  SSPAN_FAIL("step row at position {}: unknown span mode", row.pos);
}

void StepRunner::add(const StepRow& r) {
  check(r, tokens_.size());
  mode_.push_back(add_span(r));
  ++next_pos_[size_t(r.slot)];
  if (r.logits) logit_rows_.push_back(int32_t(tokens_.size()));
  tokens_.push_back(r.token);
  pos_.push_back(r.pos);
  slot_.push_back(r.slot);
}

int StepRunner::run() {
  SSPAN_CHECK(!tokens_.empty(), "a step needs at least one row");
  const bool records = !mass_rows_.empty() || !query_rows_.empty() || head_span_.rows() > 0;
  SSPAN_CHECK(!records || model_.backend().records_attention(),
              "the step has rows whose span policy learns from the attention (recycled), which the {} backend does "
              "not record",
              model_.backend().name());
  model_.forward({tokens_, pos_, slot_, mode_, &span_, logit_rows_, &head_span_, mass_rows_, query_rows_});
  std::copy(next_pos_.begin(), next_pos_.end(), lengths_.begin());
  deliver_records();
  m_ = int(logit_rows_.size());
  logits_read_ = false;
  return m_;
}

int StepRunner::run(std::span<const StepRow> rows) {
  SSPAN_CHECK(!rows.empty() && int(rows.size()) <= max_rows_, "a step takes 1 to {} rows, got {}", max_rows_,
              rows.size());
  // The step's block size: that of its first tracker (others are re-encoded).
  int block = 64;
  for (const StepRow& r : rows)
    if (r.span.mode == RowSpan::Mode::Tracker && r.span.tracker) {
      block = r.span.tracker->block_size();
      break;
    }
  begin(block);
  for (size_t i = 0; i < rows.size(); ++i) {  // check all before pushing any tracker
    check(rows[i], i);
    ++next_pos_[size_t(rows[i].slot)];
  }
  begin(block);
  for (const StepRow& r : rows) add(r);
  return run();
}

// The recorded attention mass and queries, to the trackers that asked for them.
void StepRunner::deliver_records() {
  const ModelConfig& c = model_.config();
  const size_t heads = size_t(c.num_hidden_layers) * size_t(c.num_key_value_heads);
  for (size_t i = 0; i < mass_rows_.size(); ++i) {
    const int32_t pos = pos_[size_t(mass_rows_[i])];
    SpanTracker& t = *mass_trackers_[i];
    // Only the top keys when the tracker keeps no more and the backend selects them.
    if (const int32_t k = t.mass_top_k(); k > 0) {
      top_keys_.resize(heads * size_t(std::min(k, pos + 1)));
      if (model_.backend().read_attention_top_k(int(i), k, top_keys_)) {
        t.take_top_keys(pos, top_keys_, c.num_hidden_layers, c.num_key_value_heads);
        continue;
      }
    }
    record_.resize(heads * (size_t(pos) + 1));
    model_.backend().read_attention_mass(int(i), record_);
    t.take_mass(pos, record_, c.num_hidden_layers, c.num_key_value_heads);
  }
  for (size_t i = 0; i < query_rows_.size(); ++i) {
    record_.resize(size_t(c.head_dim));
    model_.backend().read_query(int(i), record_);
    query_trackers_[i]->take_query(pos_[size_t(query_rows_[i])], record_);
  }
}

std::span<const float> StepRunner::logits(int i) {
  SSPAN_CHECK(i >= 0 && i < m_, "logit row {} outside the last step's {}", i, m_);
  if (!logits_read_) {
    model_.read_logits(logits_, m_);
    logits_read_ = true;
  }
  const size_t V = size_t(model_.config().vocab_size);
  return {logits_.data() + size_t(i) * V, V};
}

bool StepRunner::pick_on_device(const SamplingOptions& options, std::span<const float> uniforms,
                                std::span<int32_t> ids) {
  SSPAN_CHECK(int(ids.size()) <= m_, "{} ids to choose from {} logit rows", ids.size(), m_);
  if (ids.empty() || !options.device_capable()) return false;
  return model_.sample_on_device(int(ids.size()), options, uniforms, ids);
}

}  // namespace sspan
