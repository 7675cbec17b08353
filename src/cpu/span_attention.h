#pragma once
// Attention of each query row over its self-selected span, on the CPU: the op the CPU
// backend runs and the reference the CUDA kernels are tested against.
#include <cstdint>
#include <span>
#include <vector>

#include "cpu/cpu_isa.h"
#include "sspan/dtype.h"
#include "sspan/span.h"

namespace sspan::cpu {

// Keys and values of one layer in the KV cache, rows of head_dim elements of `dtype`, in
// one of two layouts:
//   block = 0: [slots][Hkv][C][D], each (slot, KV head) one run of C rows;
//   block > 0: [slots][C / block][Hkv][block][D] (block a power of two dividing C), the
//     layout of the CPU backend: a block of positions holds every KV head's rows in one
//     run, so a walk over a span that visits all heads of a position block together reads
//     memory in runs Hkv times longer than per-head runs (a span's pieces cost their bytes,
//     not a hardware-prefetch restart per head).
struct KvLayerView {
  const void* k = nullptr;
  const void* v = nullptr;
  int slots = 0, kv_heads = 0, max_ctx = 0, head_dim = 0;
  DType dtype = DType::F32;
  int block = 0;

  // Row (slot, h, p) starts at element row(...) * head_dim.
  int64_t row(int slot, int h, int p) const {
    if (block == 0) return (int64_t(slot) * kv_heads + h) * max_ctx + p;
    return ((int64_t(slot) * (max_ctx / block) + p / block) * kv_heads + h) * block + p % block;
  }
  // Rows of an fp32 cache (references and tests).
  const float* k_row(int slot, int h, int p) const { return static_cast<const float*>(k) + row(slot, h, p) * head_dim; }
  const float* v_row(int slot, int h, int p) const { return static_cast<const float*>(v) + row(slot, h, p) * head_dim; }
};

// The attended positions of each query row as sorted, merged ranges (CSR over rows): the
// form the kernel walks. Built once per step from the blocked encoding and read by every
// layer; assign() keeps the capacity of earlier steps.
struct AttendedRanges {
  std::vector<int32_t> indptr{0};  // [rows + 1]
  std::vector<PosRange> ranges;    // [nnz], ascending and disjoint within a row
  std::vector<int32_t> before;     // [nnz] attended positions of the row before ranges[i]
  std::vector<int32_t> count;      // [rows] attended positions of each row

  int rows() const { return int(count.size()); }
  // Whether row r (>= 1) attends row r - 1's positions and the one after them, and no
  // other: the same ranges but for the last, which ends one later (consecutive prompt rows
  // of a sequence under a span they share).
  bool extends_previous(int r) const;
  // From the blocked encoding: the set bits of the listed blocks, then the dense tail.
  void assign(const SpanBatch& span);
  // Causal rows: row r attends [0, pos[r]].
  void assign_dense(std::span<const int32_t> pos);
  // One row per (step row, KV head), [row][kv head]: the row of `heads` that head_row[i]
  // names, or (head_row[i] < 0) the same span row of `span` for every head.
  void assign_per_head(const SpanBatch& span, const SpanBatch* heads, std::span<const int32_t> head_row,
                       int kv_heads);

 private:
  void add_row(std::span<const PosRange> row);
  std::vector<PosRange> row_;  // one row being decoded
};

struct AttentionConfig {
  Isa isa = Isa::Scalar;  // the widest allowed; narrower where the head dim needs it
  // A row is computed in chunks of this many attended positions, whose softmax states
  // {o, m, d} are merged as on the GPU. The split is fixed by the row alone, so a row's
  // result never depends on the batch, the thread count or how chunks were scheduled;
  // chunks of one row run on several threads when there are few rows.
  int chunk = 256;
};

// Scratch of the op: per-thread kernel buffers and chunk states. It grows to its steady
// size on the first steps and is reused after that.
class AttentionWorkspace {
 public:
  float* floats(size_t count);                                // 64-byte aligned, grown if needed
  std::vector<int64_t>& task_first() { return task_first_; }  // [units + 1] when units are split
  std::vector<int32_t>& unit_first() { return unit_first_; }  // [units + 1] first row of each unit
  float* score_floats(size_t count);  // raw scores of the rows whose mass is recorded

 private:
  std::vector<float> buf_, scores_;
  std::vector<int64_t> task_first_;
  std::vector<int32_t> unit_first_;
};

// Where the op writes the attention mass of some rows: for row r with record[r] = i >= 0
// and KV head h, out[i * row_stride + h * head_stride + j] = the softmax probability of
// the row's j-th attended position summed over the KV head's query heads (j below the
// row's attended count). The probabilities are the op's own scores (kept while it
// computes them), normalised with the row's final softmax state: no second pass over K.
struct AttentionMass {
  const int32_t* record = nullptr;  // [n] record index of each row, or -1
  float* out = nullptr;
  int64_t row_stride = 0, head_stride = 0;
};

// out[n, Hq, D] = softmax over row r's attended positions of (q . k / sqrt(D)) . v, for
// query head h on KV head h / (Hq / Hkv) of slot[r]'s cache. Each K/V row is read once for
// all query heads of its group, and for up to 4 consecutive rows of a sequence whose sets
// differ only in their own position (prompt rows). An empty row yields zeros. `ranges` holds n rows (every
// KV head attends its row's set: a row's tiles are read for all KV heads together, which
// the blocked layout makes one run of memory) or n * Hkv rows, [row][kv head]. Rows (or
// (row, KV head) pairs) and, when there are few, their chunks run in parallel on the
// threads. `mass`, when given, receives the attention mass of the rows it names.
void span_attention(const float* q, const KvLayerView& kv, const int32_t* slot, const AttendedRanges& ranges,
                    float* out, int n, int q_heads, const AttentionConfig& config, AttentionWorkspace& workspace,
                    const AttentionMass* mass = nullptr);

// The same from the blocked encoding, with the best Isa of this CPU (tests, references).
void span_attention(const float* q, const KvLayerView& kv, const int32_t* slot, const SpanBatch& span, float* out,
                    int n, int q_heads);

// dst[0, count) = src[0, count) as `dtype`: round to nearest even, fp16 saturating at
// +-65504 (a value out of fp16 range becomes the largest half, not inf).
void store_kv(const float* src, void* dst, DType dtype, int64_t count, Isa isa);

}  // namespace sspan::cpu
