// Attention of each query row over its self-selected span, on the CPU.
//
// The span of row r is given in the blocked encoding (SpanBatch): listed blocks with a
// B-bit mask each, all before tail_start[r], then the dense tail [tail_start[r], pos[r]].
// Positions are visited in ascending order in 16-token sub-tiles; a sub-tile whose mask
// bits are all zero is skipped without touching its keys. Softmax is online (running
// max m, running denominator d, running output o), exactly the masked softmax.
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/dot.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace sspan::cpu {
namespace {

constexpr int kSubTile = 16;

// Online-softmax accumulator for one query head.
struct SoftmaxState {
  float m = -std::numeric_limits<float>::infinity();
  float d = 0.f;
  float* o;  // [D]
  int D;

  // Fold in `count` scores s[] with value rows v_rows[].
  void add(const float* s, const float* const* v_rows, int count) {
    float tile_max = m;
    for (int j = 0; j < count; ++j) tile_max = std::max(tile_max, s[j]);
    const float scale = std::exp(m - tile_max);  // exp(-inf) = 0 on the first tile
    d *= scale;
    for (int k = 0; k < D; ++k) o[k] *= scale;
    for (int j = 0; j < count; ++j) {
      const float p = std::exp(s[j] - tile_max);
      d += p;
      const float* v = v_rows[j];
      for (int k = 0; k < D; ++k) o[k] += p * v[k];
    }
    m = tile_max;
  }
};

// Attend query q[D] of one head to the listed positions of one sub-tile.
// `bits` selects positions base + j (bit j) within the sub-tile of `count` positions.
void attend_subtile(const float* q, const KvLayerView& kv, int slot, int h_kv, int base, int count,
                    uint32_t bits, float scale, SoftmaxState& st) {
  float s[kSubTile];
  const float* v_rows[kSubTile];
  int m = 0;
  for (int j = 0; j < count; ++j) {
    if (!((bits >> j) & 1u)) continue;
    const int p = base + j;
    s[m] = dot(F32Row{kv.k_row(slot, h_kv, p)}, q, kv.head_dim) * scale;
    v_rows[m] = kv.v_row(slot, h_kv, p);
    ++m;
  }
  if (m) st.add(s, v_rows, m);
}

}  // namespace

void span_attention(const float* q, const KvLayerView& kv, const int32_t* slot, const SpanBatch& span,
                    float* out, int n, int q_heads) {
  const int D = kv.head_dim;
  const int group = q_heads / kv.kv_heads;
  const int B = span.block_size;
  const int W = span.words_per_block();
  const float scale = 1.0f / std::sqrt(float(D));

  // Parallel over (row, head) once there is enough work to pay for the threads.
  int64_t work = 0;
  for (int r = 0; r < n; ++r) work += int64_t(span.pos[size_t(r)] + 1) * q_heads * D;
  parallel_for(
      int64_t(n) * q_heads,
      [&](int64_t task, int) {
        const int r = int(task / q_heads), h = int(task % q_heads);
        const float* qh = q + (int64_t(r) * q_heads + h) * D;
        float* oh = out + (int64_t(r) * q_heads + h) * D;
        for (int k = 0; k < D; ++k) oh[k] = 0.f;
        SoftmaxState st{.o = oh, .D = D};
        const int s = slot[r], h_kv = h / group;

        // Listed blocks, 16-token sub-tiles, skipping the all-zero ones.
        for (int32_t e = span.indptr[size_t(r)]; e < span.indptr[size_t(r) + 1]; ++e) {
          const int block_base = span.block_ids[size_t(e)] * B;
          const uint32_t* words = span.masks.data() + size_t(e) * size_t(W);
          for (int sub = 0; sub < B; sub += kSubTile) {
            const uint32_t bits = (words[sub / 32] >> (sub % 32)) & 0xffffu;
            if (bits == 0) continue;
            attend_subtile(qh, kv, s, h_kv, block_base + sub, kSubTile, bits, scale, st);
          }
        }
        // Dense tail [tail_start, pos].
        const int t_end = span.pos[size_t(r)] + 1;
        for (int base = span.tail_start[size_t(r)]; base < t_end; base += kSubTile) {
          const int count = std::min(kSubTile, t_end - base);
          attend_subtile(qh, kv, s, h_kv, base, count, 0xffffu, scale, st);
        }
        const float inv = st.d > 0.f ? 1.0f / st.d : 0.f;  // an empty span yields zeros
        for (int k = 0; k < D; ++k) oh[k] *= inv;
      },
      work >= (int64_t(1) << 16) ? 0 : 1);
}

}  // namespace sspan::cpu
