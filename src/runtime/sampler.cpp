#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace sspan {

int32_t argmax(std::span<const float> logits) {
  // First maximum wins, as torch.argmax and the device argmax (kernels/sampling.cu); NaN is
  // never chosen, whatever its index (the backends reject non-finite logits before this).
  int64_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[size_t(best)])) best = int64_t(i);
  SSPAN_CHECK(best >= 0, "argmax over {} logits that are all NaN", logits.size());
  return int32_t(best);
}

double log_softmax_at(std::span<const float> logits, int32_t id) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(double(v) - mx);
  return double(logits[size_t(id)]) - mx - std::log(sum);
}

Sampler::Sampler(const SamplingOptions& o, int decodable) : opt_(o), decodable_(decodable), rng_(o.seed) {
  SSPAN_CHECK(std::isfinite(o.temperature) && o.temperature >= 0.f, "temperature must be >= 0, got {}",
              o.temperature);
  SSPAN_CHECK(o.top_k >= 0, "top-k must be >= 0, got {}", o.top_k);
  SSPAN_CHECK(o.top_p > 0.f && o.top_p <= 1.f, "top-p must be in (0, 1], got {}", o.top_p);
  SSPAN_CHECK(o.min_p >= 0.f && o.min_p <= 1.f, "min-p must be in [0, 1], got {}", o.min_p);
  SSPAN_CHECK(std::isfinite(o.repeat_penalty) && o.repeat_penalty > 0.f, "repeat penalty must be > 0, got {}",
              o.repeat_penalty);
  SSPAN_CHECK(o.repeat_last_n >= -1, "repeat-last-n must be >= -1 (-1: every token), got {}", o.repeat_last_n);
  SSPAN_CHECK(decodable >= 1, "sampler: {} decodable tokens", decodable);
  cand_.reserve(size_t(decodable));
  if (o.repeat_penalty != 1.f) scratch_.reserve(size_t(decodable));
}

// The logits with llama.cpp's repeat penalty applied once to each distinct id among the
// last repeat_last_n tokens; the logits themselves when the penalty is off.
std::span<const float> Sampler::penalised(std::span<const float> logits, std::span<const int32_t> history) {
  if (opt_.repeat_penalty == 1.f || opt_.repeat_last_n == 0 || history.empty()) return logits;
  const size_t n = opt_.repeat_last_n < 0 ? history.size() : std::min(history.size(), size_t(opt_.repeat_last_n));
  recent_.assign(history.end() - std::ptrdiff_t(n), history.end());
  std::sort(recent_.begin(), recent_.end());
  recent_.erase(std::unique(recent_.begin(), recent_.end()), recent_.end());
  scratch_.assign(logits.begin(), logits.end());
  for (int32_t id : recent_) {
    if (id < 0 || size_t(id) >= scratch_.size()) continue;
    float& l = scratch_[size_t(id)];
    l = l > 0.f ? l / opt_.repeat_penalty : l * opt_.repeat_penalty;
  }
  return scratch_;
}

int32_t Sampler::sample(std::span<const float> all_logits, float u01, std::span<const int32_t> history) {
  SSPAN_CHECK(all_logits.size() >= size_t(decodable_), "sampler: {} logits for {} decodable tokens",
              all_logits.size(), decodable_);
  const std::span<const float> logits = penalised(all_logits.first(size_t(decodable_)), history);
  if (opt_.temperature == 0.f) return argmax(logits);

  // Scaled logits, sorted descending (only as far as top-k needs).
  cand_.clear();
  for (size_t i = 0; i < logits.size(); ++i) cand_.emplace_back(logits[i] / opt_.temperature, int32_t(i));
  size_t keep = cand_.size();
  if (opt_.top_k > 0) keep = std::min(keep, size_t(opt_.top_k));
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  std::partial_sort(cand_.begin(), cand_.begin() + std::ptrdiff_t(keep), cand_.end(), by_logit);
  cand_.resize(keep);

  // Softmax over the kept candidates.
  const float mx = cand_.front().first;
  double total = 0.0;
  for (auto& c : cand_) total += (c.first = std::exp(c.first - mx));
  // Top-p: the smallest prefix whose probability reaches p (at least one token).
  if (opt_.top_p < 1.f) {
    double cum = 0.0;
    size_t n = 0;
    while (n < cand_.size()) {
      cum += cand_[n].first / total;
      ++n;
      if (cum >= opt_.top_p) break;
    }
    cand_.resize(n);
    total = 0.0;
    for (const auto& c : cand_) total += c.first;
  }
  // Min-p: drop tokens less likely than min_p times the most likely one (whose weight is
  // exp(0) = 1 after the shift above). The candidates are sorted, so this is a prefix.
  if (opt_.min_p > 0.f) {
    size_t n = 1;
    while (n < cand_.size() && cand_[n].first >= double(opt_.min_p)) ++n;
    cand_.resize(n);
    total = 0.0;
    for (const auto& c : cand_) total += c.first;
  }
  const double u = double(u01) * total;
  double acc = 0.0;
  for (const auto& c : cand_) {
    acc += c.first;
    if (u < acc) return c.second;
  }
  return cand_.back().second;
}

}  // namespace sspan
