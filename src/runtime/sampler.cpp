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

Sampler::Sampler(const SamplingOptions& o, int vocab_size) : opt_(o), rng_(o.seed) {
  SSPAN_CHECK(std::isfinite(o.temperature) && o.temperature >= 0.f, "temperature must be >= 0, got {}",
              o.temperature);
  SSPAN_CHECK(o.top_k >= 0, "top-k must be >= 0, got {}", o.top_k);
  SSPAN_CHECK(o.top_p > 0.f && o.top_p <= 1.f, "top-p must be in (0, 1], got {}", o.top_p);
  cand_.reserve(size_t(vocab_size));
}

int32_t Sampler::sample(std::span<const float> logits, float u01) {
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
  const double u = double(u01) * total;
  double acc = 0.0;
  for (const auto& c : cand_) {
    acc += c.first;
    if (u < acc) return c.second;
  }
  return cand_.back().second;
}

}  // namespace sspan
