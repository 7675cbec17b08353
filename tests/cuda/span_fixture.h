#pragma once
// Random attention inputs for the decode/prefill kernel tests: a KV cache, queries and a
// batch of spans (clusters placed at random before a dense tail).
#include <algorithm>
#include <random>
#include <vector>

#include "cpu/ops.h"
#include "sspan/span.h"

namespace sspan::test {

struct AttnShape {
  int rows = 1;      // one slot per row
  int q_heads = 8;
  int kv_heads = 8;
  int head_dim = 128;
  int max_ctx = 1024;
};

// Sorted, merged ranges of `cluster`-token clusters covering about keep * limit positions
// of [0, limit).
inline std::vector<PosRange> random_clusters(std::mt19937& rng, int limit, int cluster, double keep) {
  std::vector<PosRange> out;
  if (limit <= 0) return out;
  cluster = std::min(cluster, limit);
  const int count = std::max(1, int(keep * limit / cluster));
  std::uniform_int_distribution<int> start(0, limit - cluster);
  std::vector<int> starts(static_cast<size_t>(count));
  for (int& s : starts) s = start(rng);
  std::sort(starts.begin(), starts.end());
  for (int s : starts) {
    if (!out.empty() && s <= out.back().end) out.back().end = std::max(out.back().end, s + cluster);
    else out.push_back({s, s + cluster});
  }
  return out;
}

// Dense softmax(q . k / sqrt(D)) . v over the decoded ranges of each row, in double: an
// independent check of both the kernel and the CPU reference.
inline std::vector<float> reference_by_ranges(const std::vector<float>& q, const cpu::KvLayerView& kv,
                                              const std::vector<int32_t>& slot, const SpanBatch& span,
                                              int q_heads) {
  const int D = kv.head_dim, group = q_heads / kv.kv_heads;
  std::vector<float> out(size_t(span.rows()) * q_heads * D);
  for (int r = 0; r < span.rows(); ++r) {
    const std::vector<PosRange> ranges = span.row_ranges(r);
    for (int h = 0; h < q_heads; ++h) {
      const float* qh = &q[(size_t(r) * q_heads + h) * D];
      std::vector<double> scores;
      std::vector<int> positions;
      double mx = -1e300;
      for (const PosRange& pr : ranges)
        for (int p = pr.begin; p < pr.end; ++p) {
          const float* k = kv.k_row(slot[size_t(r)], h / group, p);
          double s = 0;
          for (int d = 0; d < D; ++d) s += double(qh[d]) * k[d];
          s /= std::sqrt(double(D));
          scores.push_back(s);
          positions.push_back(p);
          mx = std::max(mx, s);
        }
      std::vector<double> acc(size_t(D), 0.0);
      double den = 0;
      for (size_t i = 0; i < scores.size(); ++i) {
        const double w = std::exp(scores[i] - mx);
        den += w;
        const float* v = kv.v_row(slot[size_t(r)], h / group, positions[i]);
        for (int d = 0; d < D; ++d) acc[size_t(d)] += w * v[d];
      }
      for (int d = 0; d < D; ++d) out[(size_t(r) * q_heads + h) * D + size_t(d)] = float(acc[size_t(d)] / den);
    }
  }
  return out;
}

}  // namespace sspan::test
