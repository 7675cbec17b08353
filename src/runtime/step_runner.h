#pragma once
// The one place a forward step is assembled and run: StepRows (token, position, slot,
// span) become the host StepBatch the backend uploads, the KV slots' lengths are kept and
// checked, and the logits (or device-chosen ids) of the rows that asked come back.
// Engine::decode runs a whole step at once; the Scheduler adds rows one by one.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/llama.h"
#include "sspan/sampling.h"
#include "sspan/step.h"
#include "sspan/tokenizer.h"

namespace sspan {

class StepRunner {
 public:
  // `model` must be allocated for at least max_rows rows (and logit rows), `slots` slots
  // of max_ctx positions. `tok` and bos_id give the text a tracker is pushed, and the ids a
  // row may carry. tok == nullptr (benchmarks of a checkpoint without a tokenizer): ids
  // in the model's vocabulary, and trackers are pushed no text, which only the policies
  // that read none (dense, window, recycled) are meant for.
  StepRunner(LlamaModel& model, const Tokenizer* tok, int32_t bos_id, int slots, int max_ctx, int max_rows);

  int max_rows() const { return max_rows_; }
  int slots() const { return int(lengths_.size()); }

  // A whole step: every row is checked before any tracker is pushed. Returns the number
  // of logit rows.
  int run(std::span<const StepRow> rows);

  // Row by row: begin(block_size), add() each row (checked, its tracker pushed, its span
  // encoded at once), then run().
  void begin(int block_size);
  void add(const StepRow& row);
  int run();

  // Logits [V] of logit row i of the last step (read from the backend on first use).
  std::span<const float> logits(int i);
  // Choose the next token of each of the first `ids.size()` logit rows on the device.
  // False when the backend leaves that to the host (nothing is chosen then).
  bool pick_on_device(const SamplingOptions& options, std::span<const float> uniforms, std::span<int32_t> ids);

  int32_t length(int slot) const;
  void clear(int slot) { truncate(slot, 0); }
  void truncate(int slot, int32_t length);

  // The bytes token `id` stands for in the text a tracker reads (BOS: none).
  std::string token_text(int32_t id) const {
    return id == bos_id_ || tok_ == nullptr ? std::string() : tok_->token_bytes(id);
  }

 private:
  void check(const StepRow& row, size_t index);
  RowMode add_span(const StepRow& row);  // returns the row's mode

  LlamaModel& model_;
  const Tokenizer* tok_;
  int vocab_;  // ids a row may carry
  int32_t bos_id_;
  int max_ctx_, max_rows_;
  std::vector<int32_t> lengths_;   // [slots] positions written per slot
  std::vector<int32_t> next_pos_;  // [slots] the position each slot expects next in this step
  // The host step, capacity reserved once: [n] per row, logit_rows_ [m].
  std::vector<int32_t> tokens_, pos_, slot_, logit_rows_;
  std::vector<RowMode> mode_;  // [n] Dense rows attend causally, Sparse rows their span row
  SpanBatch span_;
  SpanBatch head_span_;  // [PerHead rows * L * Hkv] rows of per-(layer, KV head) spans
  // Rows whose attention mass / query the step records, and the trackers that asked.
  std::vector<int32_t> mass_rows_, query_rows_;
  std::vector<SpanTracker*> mass_trackers_, query_trackers_;
  std::vector<float> record_;      // scratch for one row's mass or query
  std::vector<int32_t> top_keys_;  // scratch for one row's top keys [L][Hkv][k]
  void deliver_records();
  std::vector<float> logits_;  // [M, V] host copy of the step's logits
  int m_ = 0;
  bool logits_read_ = false;
};

}  // namespace sspan
