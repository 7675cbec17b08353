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

// Positions per tile. The online softmax rescales the running output once per tile, and
// the next tile's K/V rows are prefetched while this one is computed.
inline constexpr int kTile = 32;
// Query heads of a GQA group computed together on one pass over a tile (more are done
// in further passes over the same, L1-resident, tile).
inline constexpr int kHeadBlock = 4;

// Half-precision cache elements, as stored (the kernels convert them in registers).
struct Half {
  uint16_t bits;
};
struct BHalf {
  uint16_t bits;
};

// One chunk of one (query row, KV head): `count` consecutive attended positions of the row,
// starting `offset` positions into ranges[range]. The kernel computes the softmax state
// {o, m, d} of the chunk for the G query heads of the KV head, reading each K/V row once.
struct ChunkArgs {
  const void* k = nullptr;  // [C][D] keys of this (slot, KV head) in `dtype`; position p at p * D
  const void* v = nullptr;  // [C][D] values, same layout
  DType dtype = DType::F32;
  int head_dim = 0;         // D
  int group = 0;            // G query heads served by this KV head
  const float* q = nullptr; // [G][D] their queries, fp32
  float scale_log2 = 0.f;   // log2(e) / sqrt(D): scores come out in log2 units (exp2)
  const PosRange* ranges = nullptr;  // the row's attended ranges, ascending
  int range = 0;            // the chunk starts at ranges[range].begin + offset
  int offset = 0;
  int count = 0;            // attended positions in the chunk (0: an empty state)
  // Scratch, 64-byte aligned:
  float* q_scaled = nullptr;  // [G][D] q * scale_log2
  float* acc = nullptr;       // [G][D] running output, not yet divided by d
  float* scores = nullptr;    // [kHeadBlock][kTile] scores, then probabilities, of a tile
  // Optional: the chunk's scores in log2 units are also kept, position j of the chunk
  // (0 <= j < count) of query head g at raw_scores[g * raw_stride + j].
  float* raw_scores = nullptr;
  int64_t raw_stride = 0;
  // The chunk's state:
  float* o = nullptr;  // [G][D] output divided by d (zeros when count = 0)
  float* m = nullptr;  // [G] max score in log2 units (-inf when count = 0)
  float* d = nullptr;  // [G] sum over the chunk of exp2(score - m)
};

void attend_chunk_scalar(const ChunkArgs& args);
void attend_chunk_avx2(const ChunkArgs& args);
void attend_chunk_avx512(const ChunkArgs& args);

// dst[0, count) = src as `dtype` (round to nearest even; fp16 saturates at +-65504).
void store_kv_scalar(const float* src, void* dst, DType dtype, int64_t count);
void store_kv_avx2(const float* src, void* dst, DType dtype, int64_t count);
void store_kv_avx512(const float* src, void* dst, DType dtype, int64_t count);

}  // namespace sspan::cpu::attn
