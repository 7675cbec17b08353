// Attention of each query row over its self-selected span, on the CPU: which positions a
// row attends (AttendedRanges, from the blocked encoding), how rows are cut into chunks
// and spread over threads, and the merge of the chunks' softmax states {o, m, d}. The
// chunk kernel itself (one pass over the attended rows of a row's KV heads, each row
// serving every query head of its GQA group) is attention_tile.inc, built once per
// instruction set.
#include "cpu/span_attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "common/check.h"
#include "cpu/attention_kernels.h"
#include "cpu/thread_pool.h"
#include "span/block_encoding.h"

namespace sspan::cpu {
namespace {

// Rows are split into chunks across threads when there are fewer units (rows, or (row, KV
// head) pairs) than this per thread (batch 1 at long context). Otherwise each unit is one
// task whose chunks run in order on one thread; the arithmetic is the same either way.
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

// Per-thread kernel scratch for `entries` query entries: q_scaled and acc [entries][D],
// run_m and run_d [entries], scores [kHeadBlock][kTile].
size_t kernel_scratch_floats(int entries, int head_dim) {
  return 2 * round16(size_t(entries) * size_t(head_dim)) + 2 * round16(size_t(entries)) +
         round16(size_t(attn::kHeadBlock) * attn::kTile);
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
// The merged state's m and normaliser go to m_out[G] and d_out[G] when given.
void merge_chunks(float* states, int n, size_t stride, int group, int head_dim, float* out, float* m_out = nullptr,
                  float* d_out = nullptr) {
  for (int h = 0; h < group; ++h) {
    float m_all = -std::numeric_limits<float>::infinity();
    for (int s = 0; s < n; ++s) m_all = std::max(m_all, state_at(states + s * stride, group, head_dim).m[h]);
    float* o = out + size_t(h) * head_dim;
    std::fill(o, o + head_dim, 0.f);
    if (m_out) m_out[h] = m_all;
    if (d_out) d_out[h] = 0.f;
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
    if (d_out) d_out[h] = w_sum;
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

void AttendedRanges::assign_per_head(const SpanBatch& span, const SpanBatch* heads, std::span<const int32_t> head_row,
                                     int kv_heads) {
  SSPAN_CHECK(head_row.size() == size_t(span.rows()) * size_t(kv_heads),
              "attended ranges: {} head rows for {} rows of {} KV heads", head_row.size(), span.rows(), kv_heads);
  indptr.assign(1, 0);
  ranges.clear();
  before.clear();
  count.clear();
  for (size_t i = 0; i < head_row.size(); ++i) {
    const SpanBatch& from = head_row[i] < 0 ? span : *heads;
    const int r = head_row[i] < 0 ? int(i / size_t(kv_heads)) : head_row[i];
    const int32_t first = from.indptr[size_t(r)];
    row_.clear();
    span_detail::append_block_ranges(from.block_ids.data() + first,
                                     from.masks.data() + size_t(first) * size_t(from.words_per_block()),
                                     from.indptr[size_t(r) + 1] - first, from.block_size, row_);
    span_detail::append_merged(row_, {from.tail_start[size_t(r)], from.pos[size_t(r)] + 1});
    add_row(row_);
  }
}

bool AttendedRanges::extends_previous(int r) const {
  const int32_t a = indptr[size_t(r) - 1], b = indptr[size_t(r)], e = indptr[size_t(r) + 1];
  if (b == a || e - b != b - a) return false;
  if (!std::equal(ranges.begin() + a, ranges.begin() + b - 1, ranges.begin() + b)) return false;
  const PosRange &prev = ranges[size_t(b) - 1], &last = ranges[size_t(e) - 1];
  return last.begin == prev.begin && last.end == prev.end + 1;
}

float* AttentionWorkspace::score_floats(size_t count) {
  if (scores_.size() < count) scores_.resize(count);
  return scores_.data();
}

float* AttentionWorkspace::floats(size_t count) {
  if (buf_.size() < count + 16) buf_.resize(count + 16);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf_.data());
  return buf_.data() + ((64 - p % 64) % 64) / sizeof(float);
}

void span_attention(const float* q, const KvLayerView& kv, const int32_t* slot, const AttendedRanges& ranges,
                    float* out, int n, int q_heads, const AttentionConfig& config, AttentionWorkspace& workspace,
                    const AttentionMass* mass) {
  SSPAN_CHECK(kv.kv_heads > 0 && q_heads % kv.kv_heads == 0, "span attention: {} query heads on {} KV heads", q_heads,
              kv.kv_heads);
  SSPAN_CHECK(ranges.rows() == n || ranges.rows() == n * kv.kv_heads,
              "span attention: {} query rows of {} KV heads but {} rows of attended ranges", n, kv.kv_heads,
              ranges.rows());
  SSPAN_CHECK(config.chunk >= 1, "span attention: chunk of {} positions", config.chunk);
  SSPAN_CHECK(kv.block == 0 || ((kv.block & (kv.block - 1)) == 0 && kv.max_ctx % kv.block == 0),
              "span attention: KV blocks of {} positions in a context of {}", kv.block, kv.max_ctx);
  const int D = kv.head_dim, Hq = q_heads, chunk = config.chunk;
  const ChunkKernel kernel = chunk_kernel(config.isa, D);
  const float scale_log2 = 1.4426950408889634f / std::sqrt(float(D));
  const size_t elem = dtype_size(kv.dtype);
  const auto* k_bytes = static_cast<const std::byte*>(kv.k);
  const auto* v_bytes = static_cast<const std::byte*>(kv.v);
  const int Hkv = kv.kv_heads, G = Hq / Hkv;
  // Where position p of a head lies (ChunkArgs): the view's layout in shifts and strides.
  const int block_shift = kv.block ? std::countr_zero(unsigned(kv.block)) : 31;
  const int32_t block_mask = kv.block ? kv.block - 1 : -1;
  const int64_t head_stride = int64_t(kv.block ? kv.block : kv.max_ctx) * D;
  const int64_t block_stride = int64_t(Hkv) * kv.block * D;

  // A unit of work is a query row with all its KV heads, whose rows of a position block
  // are read in one pass, when every head attends the row's set and no mass is recorded;
  // otherwise a (row, KV head) pair. Whole rows go further: consecutive rows of one
  // sequence whose sets differ only in their own position (a prompt under a dense span,
  // or under any span that the prompt's rows share) form one unit of up to kRowBlock
  // rows, so each K/V row of a pass serves all of them. A row's bits are the same either way.
  const bool per_head = ranges.rows() != n;
  const bool whole_rows = !per_head && mass == nullptr;
  const int unit_heads = whole_rows ? Hkv : 1, UG = unit_heads * G;
  std::vector<int32_t>& unit_first = workspace.unit_first();  // [units + 1] first row of each unit
  unit_first.assign(1, 0);
  if (whole_rows) {
    for (int r = 1; r < n; ++r)
      if (r - unit_first.back() == attn::kRowBlock || slot[r] != slot[r - 1] || !ranges.extends_previous(r)) {
        unit_first.push_back(r);
      }
    if (n > 0) unit_first.push_back(n);
  }
  const int64_t units = whole_rows ? int64_t(unit_first.size()) - 1 : int64_t(n) * Hkv;
  const int max_rows = whole_rows ? attn::kRowBlock : 1;
  const auto row_of = [&](int64_t u) { return int(whole_rows ? unit_first[size_t(u)] : u / Hkv); };
  const auto rows_in = [&](int64_t u) { return whole_rows ? unit_first[size_t(u) + 1] - unit_first[size_t(u)] : 1; };
  const auto head_of = [&](int64_t u) { return int(whole_rows ? 0 : u % Hkv); };
  // The ranges row of (row r, KV head h), and its attended count.
  const auto range_row = [&](int r, int h) { return per_head ? r * Hkv + h : r; };
  const auto count_of = [&](int r, int h) { return ranges.count[size_t(range_row(r, h))]; };
  // A unit's positions are its last row's (the others attend prefixes of them).
  const auto unit_count = [&](int64_t u) { return count_of(row_of(u) + rows_in(u) - 1, head_of(u)); };

  int64_t work = 0, tasks = 0;
  int max_chunks = 1;
  for (int64_t u = 0; u < units; ++u) {
    const int c = chunks_of(unit_count(u), chunk);
    max_chunks = std::max(max_chunks, c);
    tasks += c;
    work += int64_t(unit_count(u)) * UG * rows_in(u) * D;
  }
  const bool parallel = work >= (int64_t(1) << 16);  // enough to pay for waking the threads
  const int threads = parallel ? num_threads() : 1;
  const bool split = parallel && tasks > units && units < kSplitBelowPairsPerThread * threads;

  // Chunk states: a block of max_rows rows' states per (unit, chunk).
  const size_t scratch_floats = kernel_scratch_floats(UG * max_rows, D), state_stride = state_floats(UG, D);
  const size_t chunk_states = size_t(max_rows) * state_stride;
  const size_t states = split ? size_t(tasks) : size_t(threads) * size_t(max_chunks);
  float* scratch_base = workspace.floats(size_t(threads) * scratch_floats + states * chunk_states);
  float* state_base = scratch_base + size_t(threads) * scratch_floats;

  // Recorded rows (pairs only): per (record, KV head) the raw scores [G][max_count], then
  // the final m [G] and normaliser d [G].
  int records = 0, max_count = 0;
  if (mass)
    for (int r = 0; r < n; ++r)
      if (mass->record[r] >= 0) {
        records = std::max(records, mass->record[r] + 1);
        for (int h = 0; h < Hkv; ++h) max_count = std::max(max_count, count_of(r, h));
      }
  const size_t record_floats = size_t(G) * size_t(max_count) + 2 * size_t(G);
  float* record_base = records ? workspace.score_floats(size_t(records) * size_t(Hkv) * record_floats) : nullptr;
  const auto record_of = [&](int64_t u) -> float* {
    const int r = row_of(u);
    if (!mass || mass->record[r] < 0) return nullptr;
    return record_base + (size_t(mass->record[r]) * size_t(Hkv) + size_t(head_of(u))) * record_floats;
  };
  // The recorded mass of pair u from its raw scores and final state.
  const auto finish_mass = [&](int64_t u) {
    const float* rec = record_of(u);
    if (!rec) return;
    const int r = row_of(u), h = head_of(u);
    const float* m = rec + size_t(G) * size_t(max_count);
    const float* d = m + G;
    float* dst = mass->out + int64_t(mass->record[r]) * mass->row_stride + int64_t(h) * mass->head_stride;
    const int count = count_of(r, h);
    std::fill(dst, dst + count, 0.f);
    for (int g = 0; g < G; ++g) {
      if (!(d[g] > 0.f)) continue;
      const float inv = 1.f / d[g];
      const float* raw = rec + size_t(g) * size_t(max_count);
      for (int j = 0; j < count; ++j) dst[j] += std::exp2(raw[j] - m[g]) * inv;
    }
  };

  const auto out_of = [&](int r, int h) { return out + (int64_t(r) * Hq + int64_t(h) * G) * D; };
  // Chunk c of unit u with thread scratch at `scratch`; its rows' states go to `at`
  // (max_rows states), or, for a row of one chunk, straight into the output with m and d
  // in its state's place (or the record's final state).
  const auto run_chunk = [&](int64_t u, int c, float* scratch, float* at) {
    const int r0 = row_of(u), R = rows_in(u), h = head_of(u), rr = range_row(r0 + R - 1, h);
    const int32_t first = ranges.indptr[size_t(rr)], last = ranges.indptr[size_t(rr) + 1];
    const int32_t start = c * chunk;  // index of the chunk's first position in the rows
    // The rows with positions in this chunk: a row ends before the next row does.
    int i0 = 0;
    while (i0 + 1 < R && count_of(r0 + i0, h) <= start) ++i0;
    attn::ChunkArgs a;
    a.k = k_bytes + size_t(kv.row(slot[r0], h, 0)) * size_t(D) * elem;
    a.v = v_bytes + size_t(kv.row(slot[r0], h, 0)) * size_t(D) * elem;
    a.heads = unit_heads;
    a.head_stride = head_stride;
    a.block_shift = block_shift;
    a.block_mask = block_mask;
    a.block_stride = block_stride;
    a.dtype = kv.dtype;
    a.head_dim = D;
    a.group = G;
    a.rows = R - i0;
    a.q = q + (int64_t(r0 + i0) * Hq + int64_t(h) * G) * D;
    a.q_row_stride = int64_t(Hq) * D;
    a.scale_log2 = scale_log2;
    a.ranges = ranges.ranges.data();
    a.count = std::min(chunk, ranges.count[size_t(rr)] - start);
    if (a.count > 0) {
      const auto* before = ranges.before.data();
      a.range = int(std::upper_bound(before + first, before + last, start) - before) - 1;
      a.offset = start - before[a.range];
    }
    float* rec = record_of(u);
    if (rec) {
      a.raw_scores = rec + start;
      a.raw_stride = max_count;
    }
    for (int i = i0; i < R; ++i) {
      const int r = r0 + i;
      a.row_count[i - i0] = std::min(chunk, count_of(r, h) - start);
      const ChunkState st = state_at(at + size_t(i) * state_stride, UG, D);
      attn::ChunkArgs::State& dst = a.out[i - i0];
      dst = {st.o, st.m, st.d};
      if (chunks_of(count_of(r, h), chunk) == 1) {
        dst.o = out_of(r, h);
        if (rec) dst.m = rec + size_t(G) * size_t(max_count), dst.d = dst.m + G;
      }
    }
    const size_t entries = size_t(UG) * size_t(a.rows);
    a.q_scaled = scratch;
    a.acc = scratch + round16(entries * D);
    a.run_m = a.acc + round16(entries * D);
    a.run_d = a.run_m + round16(entries);
    a.scores = a.run_d + round16(entries);
    kernel(a);
  };
  // Merges the chunks of unit u's rows of more than one chunk: chunk c's states at
  // unit_states + c * chunk_states.
  const auto merge_unit = [&](int64_t u, float* unit_states) {
    const int r0 = row_of(u), h = head_of(u);
    for (int i = 0; i < rows_in(u); ++i) {
      const int nc = chunks_of(count_of(r0 + i, h), chunk);
      if (nc == 1) continue;
      float* rec = record_of(u);
      float* m = rec ? rec + size_t(G) * size_t(max_count) : nullptr;
      merge_chunks(unit_states + size_t(i) * state_stride, nc, chunk_states, UG, D, out_of(r0 + i, h), m,
                   m ? m + G : nullptr);
    }
  };

  if (!split) {
    // One task per unit; its chunks in order, then merged.
    parallel_for(units, [&](int64_t u, int thread) {
      float* scratch = scratch_base + size_t(thread) * scratch_floats;
      float* my_states = state_base + size_t(thread) * size_t(max_chunks) * chunk_states;
      const int nc = chunks_of(unit_count(u), chunk);
      for (int c = 0; c < nc; ++c) run_chunk(u, c, scratch, my_states + size_t(c) * chunk_states);
      merge_unit(u, my_states);
      finish_mass(u);
    }, threads);
    return;
  }

  // Few units: every chunk is a task of its own, then each split unit's chunks are merged.
  std::vector<int64_t>& task_first = workspace.task_first();  // [units + 1] first task of each unit
  task_first.assign(1, 0);
  for (int64_t u = 0; u < units; ++u) task_first.push_back(task_first.back() + chunks_of(unit_count(u), chunk));
  parallel_for(tasks, [&](int64_t t, int thread) {
    const int64_t u = std::upper_bound(task_first.begin(), task_first.end(), t) - task_first.begin() - 1;
    float* scratch = scratch_base + size_t(thread) * scratch_floats;
    run_chunk(u, int(t - task_first[size_t(u)]), scratch, state_base + size_t(t) * chunk_states);
  }, threads);
  parallel_for(units, [&](int64_t u, int) {
    merge_unit(u, state_base + size_t(task_first[size_t(u)]) * chunk_states);
    finish_mass(u);
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
