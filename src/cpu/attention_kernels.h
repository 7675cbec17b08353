#pragma once
// The interface between the span-attention driver (span_attention.cpp) and its chunk
// kernels, one per instruction set: attention_scalar.cpp, attention_avx2.cpp and
// attention_avx512.cpp, each the same code (attention_tile.inc) over its own vector type.
// The vector files are compiled with extra -m flags, so nothing here is inline code they
// could share with the rest of the library: plain data and declarations only.
#include <cstdint>

#include "sspan/dtype.h"
#include "sspan/span.h"

namespace sspan::cpu::attn {

// Positions per tile: at most kTile, and a tile that holds kTileCut or more ends at the
// next multiple of kTileCut, which is a block of the CPU cache (kCpuKvBlock, checked in
// cpu_backend.cpp). So a tile of a dense row, or of a listed 16-position cluster, is one
// block, whose KV heads' rows lie in one ascending run of memory, while a span of short
// scattered runs still fills tiles of up to 32 positions. The online softmax rescales the
// running output once per tile. Measured (`sspan-bench attention`, `sspan-bench e2e`):
// tiles of 32 over blocks of 16 read each head in two places per tile and ran dense ~1.4x
// slower per key; tiles of 16 cost short-run spans their tile overhead twice over; blocks
// of 32 made a span of 16-position clusters ~1.4x slower.
inline constexpr int kTile = 32;
inline constexpr int kTileCut = 16;
// Query heads of a GQA group computed together on one pass over a tile (more are done
// in further passes over the same, L1-resident, tile).
inline constexpr int kHeadBlock = 4;
// Query rows of one sequence computed together on one pass (prompt rows whose spans differ
// only in their own position), at most.
inline constexpr int kRowBlock = 4;

// Half-precision cache elements, as stored (the kernels convert them in registers).
struct Half {
  uint16_t bits;
};
struct BHalf {
  uint16_t bits;
};

// One chunk of `rows` query rows for `heads` consecutive KV heads (1, or all of them):
// `count` consecutive attended positions, starting `offset` positions into ranges[range],
// of which row i attends the first row_count[i] (rows > 1: consecutive rows of a prompt,
// whose attended sets differ only in their own position, so each is a prefix of the last
// row's; row_count ascending, the last = count). The kernel computes each row's softmax
// state {o, m, d} of the chunk for the G query heads of each KV head, reading each K/V
// row once for all of them, with the bits of computing the row alone. Position p of KV
// head h (h <
// heads, counted from the chunk's first) is the row at element
//   h * head_stride + (p >> block_shift) * block_stride + (p & block_mask) * head_dim
// of k and v: both layouts of KvLayerView (per-head runs: block_shift 31, block_mask all
// ones; blocks of 2^block_shift positions holding every head).
struct ChunkArgs {
  const void* k = nullptr;  // keys of this (slot, first KV head) in `dtype`
  const void* v = nullptr;  // values, same layout
  int heads = 1;            // KV heads computed together
  int64_t head_stride = 0;  // elements between KV heads h and h + 1 at one position
  int block_shift = 31;
  int32_t block_mask = -1;
  int64_t block_stride = 0;  // elements between position blocks of one head
  DType dtype = DType::F32;
  int head_dim = 0;         // D
  int group = 0;            // G query heads served by each KV head
  int rows = 1;             // query rows, 1 to kRowBlock
  const float* q = nullptr; // [rows][heads * G][D] their queries, fp32, rows q_row_stride apart
  int64_t q_row_stride = 0;
  float scale_log2 = 0.f;   // log2(e) / sqrt(D): scores come out in log2 units (exp2)
  const PosRange* ranges = nullptr;  // the (last) row's attended ranges, ascending
  int range = 0;            // the chunk starts at ranges[range].begin + offset
  int offset = 0;
  int count = 0;            // attended positions in the chunk (0: an empty state)
  int row_count[kRowBlock] = {};  // of them, those row i attends (a prefix)
  // Scratch, 64-byte aligned:
  float* q_scaled = nullptr;  // [heads * G * rows][D] q * scale_log2, entry (hg, i) at hg * rows + i
  float* acc = nullptr;       // [heads * G * rows][D] running output, not yet divided by d
  float* run_m = nullptr;     // [heads * G * rows] running max and normaliser
  float* run_d = nullptr;
  float* scores = nullptr;    // [kHeadBlock][kTile] scores, then probabilities, of a tile
  // Optional (heads = 1, rows = 1 only): the chunk's scores in log2 units are also kept,
  // position j of the chunk (0 <= j < count) of query head g at raw_scores[g * raw_stride + j].
  float* raw_scores = nullptr;
  int64_t raw_stride = 0;
  // Each row's state of the chunk:
  struct State {
    float* o = nullptr;  // [heads * G][D] output divided by d (zeros when the row attends nothing)
    float* m = nullptr;  // [heads * G] max score in log2 units (-inf when it attends nothing)
    float* d = nullptr;  // [heads * G] sum over the chunk of exp2(score - m)
  };
  State out[kRowBlock];
};

void attend_chunk_scalar(const ChunkArgs& args);
void attend_chunk_avx2(const ChunkArgs& args);
void attend_chunk_avx512(const ChunkArgs& args);

// dst[0, count) = src as `dtype` (round to nearest even; fp16 saturates at +-65504).
void store_kv_scalar(const float* src, void* dst, DType dtype, int64_t count);
void store_kv_avx2(const float* src, void* dst, DType dtype, int64_t count);
void store_kv_avx512(const float* src, void* dst, DType dtype, int64_t count);

}  // namespace sspan::cpu::attn
