// Attention of each query row over its self-selected span, on the CPU: which positions a
// row attends (AttendedRanges, from the blocked encoding), how rows are cut into chunks
// and spread over threads, and the merge of the chunks' softmax states {o, m, d}. The
// chunk kernel itself (one pass over a KV head's attended rows serving every query head
// of its GQA group) is attention_tile.inc, built once per instruction set.
#include "cpu/span_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.h"
#include "cpu/attention_kernels.h"
#include "cpu/thread_pool.h"
#include "span/block_encoding.h"

namespace sspan::cpu {
namespace {

// Rows are split into chunks across threads when there are fewer (row, KV head) pairs
// than this per thread (batch 1 at long context). Otherwise each pair is one task whose
// chunks run in order on one thread; the arithmetic is the same either way.
constexpr int kSplitBelowPairsPerThread = 4;

using ChunkKernel = void (*)(const attn::ChunkArgs&);

// The kernel for `isa`, narrowed to one whose vector width divides the head dim.
ChunkKernel chunk_kernel(Isa isa, int head_dim) {
#ifdef SSPAN_CPU_X86
  if (isa == Isa::Avx512 && head_dim % 16 == 0) return attn::attend_chunk_avx512;
  if (isa != Isa::Scalar && head_dim % 8 == 0) return attn::attend_chunk_avx2;
#endif
  return attn::attend_chunk_scalar;
}

size_t round16(size_t floats) { return (floats + 15) / 16 * 16; }  // whole 64-byte lines

// Per-thread kernel scratch: q_scaled and acc [G][D], scores [kHeadBlock][kTile].
size_t kernel_scratch_floats(int group, int head_dim) {
  return 2 * round16(size_t(group) * size_t(head_dim)) + round16(size_t(attn::kHeadBlock) * attn::kTile);
}

// One chunk's state for the G query heads of a KV head: o [G][D], then m [G] and d [G].
struct ChunkState {
  float* o;
  float* m;
  float* d;
};
size_t state_floats(int group, int head_dim) {
  return round16(size_t(group) * size_t(head_dim)) + round16(2 * size_t(group));
}
ChunkState state_at(float* base, int group, int head_dim) {
  float* m = base + round16(size_t(group) * size_t(head_dim));
  return {base, m, m + group};
}

int chunks_of(int count, int chunk) { return count <= chunk ? 1 : (count + chunk - 1) / chunk; }

// out[G][D] from the states of a (row, KV head)'s chunks, `n` states `stride` floats apart,
// as sparse_decode_merge_kernel: state s weighs d_s * exp2(m_s - max m); a state with
// m = -inf weighs nothing, and a row with no attended position yields zeros.
void merge_chunks(float* states, int n, size_t stride, int group, int head_dim, float* out) {
  for (int h = 0; h < group; ++h) {
    float m_all = -std::numeric_limits<float>::infinity();
    for (int s = 0; s < n; ++s) m_all = std::max(m_all, state_at(states + s * stride, group, head_dim).m[h]);
    float* o = out + size_t(h) * head_dim;
    std::fill(o, o + head_dim, 0.f);
    if (m_all == -std::numeric_limits<float>::infinity()) continue;
    float w_sum = 0.f;
    for (int s = 0; s < n; ++s) {
      const ChunkState st = state_at(states + s * stride, group, head_dim);
      const float w = st.d[h] * std::exp2(st.m[h] - m_all);
      w_sum += w;
      for (int i = 0; i < head_dim; ++i) o[i] += w * st.o[size_t(h) * head_dim + size_t(i)];
    }
    const float inv = w_sum > 0.f ? 1.f / w_sum : 0.f;
    for (int i = 0; i < head_dim; ++i) o[i] *= inv;
  }
}

}  // namespace

void AttendedRanges::add_row(std::span<const PosRange> row) {
  int32_t seen = 0;
  for (const PosRange& r : row) {
    ranges.push_back(r);
    before.push_back(seen);
    seen += r.end - r.begin;
  }
  indptr.push_back(int32_t(ranges.size()));
  count.push_back(seen);
}

void AttendedRanges::assign(const SpanBatch& span) {
  indptr.assign(1, 0);
  ranges.clear();
  before.clear();
  count.clear();
  const size_t words = size_t(span.words_per_block());
  for (int r = 0; r < span.rows(); ++r) {
    const int32_t first = span.indptr[size_t(r)];
    row_.clear();
    span_detail::append_block_ranges(span.block_ids.data() + first, span.masks.data() + size_t(first) * words,
                                     span.indptr[size_t(r) + 1] - first, span.block_size, row_);
    span_detail::append_merged(row_, {span.tail_start[size_t(r)], span.pos[size_t(r)] + 1});
    add_row(row_);
  }
}

void AttendedRanges::assign_dense(std::span<const int32_t> pos) {
  indptr.assign(1, 0);
  ranges.clear();
  before.clear();
  count.clear();
  for (const int32_t t : pos) {
    const PosRange all{0, t + 1};
    add_row({&all, 1});
  }
}

float* AttentionWorkspace::floats(size_t count) {
  if (buf_.size() < count + 16) buf_.resize(count + 16);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf_.data());
  return buf_.data() + ((64 - p % 64) % 64) / sizeof(float);
}

void span_attention(const float* q, const KvLayerView& kv, const int32_t* slot, const AttendedRanges& ranges,
                    float* out, int n, int q_heads, const AttentionConfig& config, AttentionWorkspace& workspace) {
  SSPAN_CHECK(ranges.rows() == n, "span attention: {} query rows but {} rows of attended ranges", n, ranges.rows());
  SSPAN_CHECK(kv.kv_heads > 0 && q_heads % kv.kv_heads == 0, "span attention: {} query heads on {} KV heads", q_heads,
              kv.kv_heads);
  SSPAN_CHECK(config.chunk >= 1, "span attention: chunk of {} positions", config.chunk);
  const int D = kv.head_dim, Hq = q_heads, chunk = config.chunk;
  const ChunkKernel kernel = chunk_kernel(config.isa, D);
  const float scale_log2 = 1.4426950408889634f / std::sqrt(float(D));
  const size_t elem = dtype_size(kv.dtype);
  const auto* k_bytes = static_cast<const std::byte*>(kv.k);
  const auto* v_bytes = static_cast<const std::byte*>(kv.v);

  const int Hkv = kv.kv_heads, G = Hq / Hkv;
  const int64_t pairs = int64_t(n) * Hkv;  // (row, KV head) pairs

  int64_t work = 0, tasks = 0;
  int max_chunks = 1;
  for (int r = 0; r < n; ++r) {
    const int c = chunks_of(ranges.count[size_t(r)], chunk);
    max_chunks = std::max(max_chunks, c);
    tasks += int64_t(c) * Hkv;
    work += int64_t(ranges.count[size_t(r)]) * Hq * D;
  }
  const bool parallel = work >= (int64_t(1) << 16);  // enough to pay for waking the threads
  const int threads = parallel ? num_threads() : 1;
  const bool split = parallel && tasks > pairs && pairs < kSplitBelowPairsPerThread * threads;

  const size_t scratch_floats = kernel_scratch_floats(G, D), state_stride = state_floats(G, D);
  const size_t states = split ? size_t(tasks) : size_t(threads) * size_t(max_chunks);
  float* scratch_base = workspace.floats(size_t(threads) * scratch_floats + states * state_stride);
  float* state_base = scratch_base + size_t(threads) * scratch_floats;

  // Chunk c of (row r, KV head h) into `st`, with thread scratch at `scratch`.
  const auto run_chunk = [&](int r, int h, int c, float* scratch, const ChunkState& st) {
    const int32_t first = ranges.indptr[size_t(r)], last = ranges.indptr[size_t(r) + 1];
    const int32_t start = c * chunk;  // index of the chunk's first position in the row
    attn::ChunkArgs a;
    a.k = k_bytes + size_t(kv.row(slot[r], h, 0)) * size_t(D) * elem;
    a.v = v_bytes + size_t(kv.row(slot[r], h, 0)) * size_t(D) * elem;
    a.dtype = kv.dtype;
    a.head_dim = D;
    a.group = G;
    a.q = q + (int64_t(r) * Hq + int64_t(h) * G) * D;
    a.scale_log2 = scale_log2;
    a.ranges = ranges.ranges.data();
    a.count = std::min(chunk, ranges.count[size_t(r)] - start);
    if (a.count > 0) {
      const auto* before = ranges.before.data();
      a.range = int(std::upper_bound(before + first, before + last, start) - before) - 1;
      a.offset = start - before[a.range];
    }
    a.q_scaled = scratch;
    a.acc = scratch + round16(size_t(G) * D);
    a.scores = a.acc + round16(size_t(G) * D);
    a.o = st.o;
    a.m = st.m;
    a.d = st.d;
    kernel(a);
  };
  const auto out_of = [&](int r, int h) { return out + (int64_t(r) * Hq + int64_t(h) * G) * D; };

  if (!split) {
    // One task per (row, KV head); its chunks in order, then merged.
    parallel_for(pairs, [&](int64_t p, int thread) {
      const int r = int(p / Hkv), h = int(p % Hkv);
      float* scratch = scratch_base + size_t(thread) * scratch_floats;
      float* my_states = state_base + size_t(thread) * size_t(max_chunks) * state_stride;
      const int nc = chunks_of(ranges.count[size_t(r)], chunk);
      if (nc == 1) {  // straight into the output; m and d go to scratch
        const ChunkState st = state_at(my_states, G, D);
        run_chunk(r, h, 0, scratch, {out_of(r, h), st.m, st.d});
        return;
      }
      for (int c = 0; c < nc; ++c) run_chunk(r, h, c, scratch, state_at(my_states + c * state_stride, G, D));
      merge_chunks(my_states, nc, state_stride, G, D, out_of(r, h));
    }, threads);
    return;
  }

  // Few pairs: every chunk is a task of its own, then each split pair's chunks are merged.
  std::vector<int64_t>& task_first = workspace.task_first();  // [pairs + 1] first task of each pair
  task_first.assign(1, 0);
  for (int64_t p = 0; p < pairs; ++p)
    task_first.push_back(task_first.back() + chunks_of(ranges.count[size_t(p / Hkv)], chunk));
  parallel_for(tasks, [&](int64_t t, int thread) {
    const int64_t p = std::upper_bound(task_first.begin(), task_first.end(), t) - task_first.begin() - 1;
    const int r = int(p / Hkv), h = int(p % Hkv);
    const int nc = int(task_first[size_t(p) + 1] - task_first[size_t(p)]), c = int(t - task_first[size_t(p)]);
    float* scratch = scratch_base + size_t(thread) * scratch_floats;
    const ChunkState st = state_at(state_base + size_t(t) * state_stride, G, D);
    run_chunk(r, h, c, scratch, nc == 1 ? ChunkState{out_of(r, h), st.m, st.d} : st);
  }, threads);
  parallel_for(pairs, [&](int64_t p, int) {
    const int nc = int(task_first[size_t(p) + 1] - task_first[size_t(p)]);
    if (nc > 1)
      merge_chunks(state_base + size_t(task_first[size_t(p)]) * state_stride, nc, state_stride, G, D,
                   out_of(int(p / Hkv), int(p % Hkv)));
  }, threads);
}

void span_attention(const float* q, const KvLayerView& kv, const int32_t* slot, const SpanBatch& span, float* out,
                    int n, int q_heads) {
  AttendedRanges ranges;
  ranges.assign(span);
  AttentionWorkspace workspace;
  span_attention(q, kv, slot, ranges, out, n, q_heads, AttentionConfig{best_isa()}, workspace);
}

void store_kv(const float* src, void* dst, DType dtype, int64_t count, Isa isa) {
#ifdef SSPAN_CPU_X86
  if (isa == Isa::Avx512) return attn::store_kv_avx512(src, dst, dtype, count);
  if (isa == Isa::Avx2) return attn::store_kv_avx2(src, dst, dtype, count);
#endif
  attn::store_kv_scalar(src, dst, dtype, count);
}

}  // namespace sspan::cpu
