// validate_step: the one set of checks a step passes before a backend uses it.
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "model/backend.h"

namespace sspan {

namespace {

// The PerHead rows' head_span: L * Hkv rows per PerHead row, each at its row's position.
void validate_head_span(const StepBatch& step, const StepLimits& limits) {
  size_t per_head = 0;
  for (const RowMode m : step.mode) per_head += m == RowMode::PerHead;
  if (per_head == 0) return;
  SSPAN_CHECK(step.head_span != nullptr, "step: {} rows are PerHead but the step carries no head span", per_head);
  SSPAN_CHECK(limits.layers > 0 && limits.kv_heads > 0, "step: PerHead rows on a backend that takes none");
  const SpanBatch& heads = *step.head_span;
  heads.validate();
  const size_t each = size_t(limits.layers) * size_t(limits.kv_heads);
  SSPAN_CHECK(size_t(heads.rows()) == per_head * each,
              "step: the head span has {} rows for {} PerHead rows of {} layers x {} KV heads", heads.rows(), per_head,
              limits.layers, limits.kv_heads);
  size_t next = 0;
  for (size_t i = 0; i < step.mode.size(); ++i) {
    if (step.mode[i] != RowMode::PerHead) continue;
    for (size_t j = 0; j < each; ++j, ++next)
      SSPAN_CHECK(heads.pos[next] == step.pos[i], "step: head span row {} has position {} but its row {} is at {}",
                  next, heads.pos[next], i, step.pos[i]);
  }
}

}  // namespace

void validate_step(const StepBatch& step, const StepLimits& limits) {
  const size_t n = step.tokens.size();
  SSPAN_CHECK(step.pos.size() == n && step.slot.size() == n && step.mode.size() == n,
              "step: {} tokens but {} positions, {} slots and {} row modes", n, step.pos.size(), step.slot.size(),
              step.mode.size());
  SSPAN_CHECK(limits.slots > 0 && limits.max_ctx > 0,
              "step: the KV cache is not allocated (call alloc_kv_cache first)");
  for (size_t i = 0; i < n; ++i) {
    SSPAN_CHECK(step.slot[i] >= 0 && step.slot[i] < limits.slots, "step: row {} slot {} outside [0, {})", i,
                step.slot[i], limits.slots);
    SSPAN_CHECK(step.pos[i] >= 0 && step.pos[i] < limits.max_ctx,
                "step: row {} position {} outside the context [0, {})", i, step.pos[i], limits.max_ctx);
    SSPAN_CHECK(limits.vocab == 0 || (step.tokens[i] >= 0 && step.tokens[i] < limits.vocab),
                "step: row {} token id {} outside the vocabulary [0, {})", i, step.tokens[i], limits.vocab);
    SSPAN_CHECK(step.mode[i] == RowMode::Dense || step.mode[i] == RowMode::Sparse || step.mode[i] == RowMode::PerHead,
                "step: row {} has row mode {}", i, int(step.mode[i]));
  }
  for (size_t i = 0; i < step.logit_rows.size(); ++i)
    SSPAN_CHECK(step.logit_rows[i] >= 0 && size_t(step.logit_rows[i]) < n &&
                    (i == 0 || step.logit_rows[i] > step.logit_rows[i - 1]),
                "step: logit row {} = {} (rows must ascend within [0, {}))", i, step.logit_rows[i], n);
  for (const auto* rows : {&step.mass_rows, &step.query_rows})
    for (size_t i = 0; i < rows->size(); ++i)
      SSPAN_CHECK((*rows)[i] >= 0 && size_t((*rows)[i]) < n && (i == 0 || (*rows)[i] > (*rows)[i - 1]),
                  "step: {} row {} = {} (rows must ascend within [0, {}))",
                  rows == &step.mass_rows ? "mass" : "query", i, (*rows)[i], n);
  for (const int32_t r : step.mass_rows)
    SSPAN_CHECK(step.mode[size_t(r)] == RowMode::Dense, "step: mass row {} is not Dense", r);
  validate_head_span(step, limits);
  if (!step.span) {
    for (size_t i = 0; i < n; ++i)
      SSPAN_CHECK(step.mode[i] == RowMode::Dense, "step: row {} is not Dense but the step carries no span", i);
    return;
  }
  const SpanBatch& span = *step.span;
  span.validate();
  SSPAN_CHECK(size_t(span.rows()) == n, "step: the span has {} rows for a step of {} rows", span.rows(), n);
  for (size_t i = 0; i < n; ++i) {
    SSPAN_CHECK(span.pos[i] == step.pos[i], "step: row {} has span position {} but token position {}", i, span.pos[i],
                step.pos[i]);
    SSPAN_CHECK(step.mode[i] == RowMode::Sparse || span.row_is_dense(int(i)),
                "step: row {} is {} but its span row lists blocks or starts its tail at {}", i,
                step.mode[i] == RowMode::Dense ? "Dense" : "PerHead", span.tail_start[i]);
  }
}

void Backend::read_attention_mass(int, std::span<float>) {
  SSPAN_FAIL("the {} backend does not record attention mass", name());
}
void Backend::read_query(int, std::span<float>) { SSPAN_FAIL("the {} backend does not record queries", name()); }

void LogitRowOrigins::assign(const StepBatch& step) {
  pos.clear();
  slot.clear();
  for (int32_t r : step.logit_rows) {
    pos.push_back(step.pos[size_t(r)]);
    slot.push_back(step.slot[size_t(r)]);
  }
}

std::string LogitRowOrigins::describe(int row) const {
  if (row < 0 || size_t(row) >= pos.size()) return fmt::format("logit row {}", row);
  return fmt::format("the token at position {} of KV slot {}", pos[size_t(row)], slot[size_t(row)]);
}

void check_logits_finite(std::span<const float> logits, int64_t vocab, int m, const LogitRowOrigins& origins) {
  SSPAN_CHECK(int64_t(logits.size()) >= vocab * m, "logits: {} values for {} rows of {}", logits.size(), m, vocab);
  for (int r = 0; r < m; ++r) {
    const float* row = logits.data() + int64_t(r) * vocab;
    uint32_t any_bad = 0;  // an all-ones exponent is NaN or an infinity; integer ops vectorise
    for (int64_t i = 0; i < vocab; ++i) {
      uint32_t bits;
      std::memcpy(&bits, row + i, sizeof bits);
      any_bad |= uint32_t((bits & 0x7F800000u) == 0x7F800000u);
    }
    if (!any_bad) continue;
    for (int64_t i = 0; i < vocab; ++i)
      SSPAN_CHECK(std::isfinite(row[i]),
                  "the logits after {} are not finite (token id {} has {}): the activations overflowed the "
                  "backend dtype or a weight holds NaN",
                  origins.describe(r), i, row[i]);
  }
}

}  // namespace sspan
