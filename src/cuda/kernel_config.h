#pragma once
// Launch configuration of the attention kernels, decided on the host from a device's
// limits: the shared-memory layouts (shared with the kernels, so that the sizes checked
// here are the sizes launched), which configuration fits a device, the decode kernel's
// split count, and raising a kernel attribute once per device. Plain C++ (no CUDA
// headers), built in every configuration and unit-tested in tests/cuda_host.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace sspan::cuda {

// Head dims both attention kernels are built for (every LLaMA-family size in use).
inline constexpr int kHeadDims[] = {32, 48, 64, 80, 96, 128};
bool head_dim_supported(int head_dim);
std::string supported_head_dims();  // "32, 48, 64, 80, 96 or 128"

// What the launch choices need to know about a device (cudaDeviceGetAttribute).
struct DeviceLimits {
  int sm_count = 0;                  // cudaDevAttrMultiProcessorCount
  int max_smem_per_block_optin = 0;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
  int max_smem_per_sm = 0;           // cudaDevAttrMaxSharedMemoryPerMultiprocessor
  int reserved_smem_per_block = 0;   // cudaDevAttrReservedSharedMemoryPerBlock
  int max_blocks_per_sm = 0;         // cudaDevAttrMaxBlocksPerMultiprocessor
};

// CTAs of `bytes` dynamic shared memory that fit on one SM at once (shared memory and the
// block limit only; the occupancy API also counts registers).
int ctas_per_sm_by_shared(const DeviceLimits& d, size_t bytes);

// ---- sparse decode attention ----
inline constexpr int kDecodeTileTokens = 32;  // tokens per work item (one mask word)
inline constexpr int kDecodeStages = 2;       // cp.async tiles in flight per warp
inline constexpr int kDecodePad = 8;          // elements of padding per shared K/V row (16 bytes)
inline constexpr int kDecodeMaxGroup = 8;     // query heads per KV head one CTA serves
inline constexpr int kDecodeMaxWarps = 4;
inline constexpr int kDecodeItemBytes = 8;    // a staged work item: {first position, mask}
inline constexpr int kMaxDecodeSplits = 64;

// Byte offsets of the decode kernel's dynamic shared memory for `warps` warps:
//   stages [warps][kDecodeStages][K, V][32][D + kDecodePad]  elements
//   q      [kDecodeMaxGroup][D]                               fp32 (the scalar path's queries)
//   items  [warps][32]                                        staged live work items
struct DecodeSmemLayout {
  size_t stage_elems;  // elements of one stage (K tile + V tile)
  size_t q, items, bytes;
};
constexpr DecodeSmemLayout decode_smem_layout(int head_dim, int elem_bytes, int warps) {
  DecodeSmemLayout l{};
  l.stage_elems = size_t(2) * kDecodeTileTokens * size_t(head_dim + kDecodePad);
  l.q = size_t(warps) * kDecodeStages * l.stage_elems * size_t(elem_bytes);
  l.items = l.q + size_t(kDecodeMaxGroup) * size_t(head_dim) * 4;
  l.bytes = l.items + size_t(warps) * 32 * kDecodeItemBytes;
  return l;
}

// How the decode kernel computes a tile: fp32 FMAs with the queries in shared memory, or
// tensor cores (mma.sync m16n8k16, the group's heads as the M rows) for GQA groups where
// the FMAs, not the bytes, would bound it.
enum class DecodeMath : uint8_t { Scalar, TensorCore };
const char* decode_math_name(DecodeMath m);
DecodeMath choose_decode_math(int group);  // TensorCore for groups of 4 or more

// Warps per decode CTA (4 or 2) whose shared memory fits the device and that keeps the
// most warps resident per SM; on a tie the one with more CTAs per SM (more CTAs hide each
// other's prologue and epilogue). Throws naming the head dim and the device limit when
// neither fits.
int choose_decode_warps(const DeviceLimits& d, int head_dim, int elem_bytes);

// What the split heuristic weighs (FlashAttention-2's num_splits_heuristic).
struct SplitInputs {
  int ctas = 0;           // CTAs without splitting: decode rows x KV heads
  int resident_ctas = 0;  // CTAs the device runs at once: SMs x CTAs per SM (occupancy API)
  int max_items = 0;      // most 32-token work items of any row
  int max_splits = 0;     // capacity of the split-state buffers (and kMaxDecodeSplits)
};
inline constexpr int kMinItemsPerSplit = 2;  // a split below 64 tokens costs more than it saves

// 1 when the CTAs already fill 80% of one wave; else the fewest splits whose wave
// efficiency (waves / ceil(waves)) is within 85% of the best, over split counts that
// change the items per split. Never more splits than max_items / kMinItemsPerSplit.
int choose_decode_splits(const SplitInputs& in);

// The split count of a step's decode launch: `rows` decode rows on `kv_heads` KV heads,
// `held` split states (sized for groups up to kDecodeMaxGroup), `resident_ctas` and the
// longest row's `max_items` as in SplitInputs. 1 when there are no decode rows, and when
// the buffers cannot hold two splits of every row (one split needs no split state).
int plan_decode_splits(int rows, int kv_heads, int64_t held, int resident_ctas, int max_items);

// Whether the split-state buffers, `held` (row, query head, split) states, serve a launch
// of `rows` decode rows of `q_heads` heads in `splits` splits. One split writes the output
// directly and needs none, whatever the number of rows.
bool decode_split_states_fit(int64_t rows, int q_heads, int splits, int64_t held);

// Query heads per KV head the decode kernel serves: q_heads a multiple of kv_heads, at most
// kDecodeMaxGroup per KV head. Checked when the KV cache is allocated, before any step.
bool decode_group_supported(int q_heads, int kv_heads);

// ---- causal prefill attention ----
inline constexpr int kPrefillRows = 64;  // query rows per CTA (16 per warp, 4 warps)
inline constexpr int kPrefillHPad = 8;   // 16-bit padding of Q, K, V and P rows
inline constexpr int kPrefillSPad = 4;   // fp32 padding of S and O rows

// Byte offsets of the prefill kernel's dynamic shared memory for `keys` keys per K/V tile;
// every fragment base stays 32-byte aligned.
struct PrefillSmemLayout {
  int qkv_ld, s_ld, p_ld, o_ld;            // leading dimensions in elements
  size_t q, k, v, s, p, o, m, d, alpha;    // byte offsets
  size_t bytes;
};
constexpr size_t align32(size_t x) { return (x + 31) / 32 * 32; }
constexpr PrefillSmemLayout prefill_smem_layout(int head_dim, int elem_bytes, int keys) {
  PrefillSmemLayout l{};
  l.qkv_ld = head_dim + kPrefillHPad;
  l.s_ld = keys + kPrefillSPad;
  l.p_ld = keys + kPrefillHPad;
  l.o_ld = head_dim + kPrefillSPad;
  const size_t e = size_t(elem_bytes);
  l.q = 0;                                                              // [64][D + 8]     T
  l.k = align32(l.q + size_t(kPrefillRows) * size_t(l.qkv_ld) * e);     // [keys][D + 8]   T
  l.v = align32(l.k + size_t(keys) * size_t(l.qkv_ld) * e);             // [keys][D + 8]   T
  l.s = align32(l.v + size_t(keys) * size_t(l.qkv_ld) * e);             // [64][keys + 4]  fp32
  l.p = align32(l.s + size_t(kPrefillRows) * size_t(l.s_ld) * 4);       // [64][keys + 8]  T
  l.o = align32(l.p + size_t(kPrefillRows) * size_t(l.p_ld) * e);       // [64][D + 4]     fp32
  l.m = align32(l.o + size_t(kPrefillRows) * size_t(l.o_ld) * 4);       // [64] running max
  l.d = l.m + size_t(kPrefillRows) * 4;                                 // [64] running sum
  l.alpha = l.d + size_t(kPrefillRows) * 4;                             // [64] rescale
  l.bytes = l.alpha + size_t(kPrefillRows) * 4;
  return l;
}

// Keys per prefill K/V tile: 64, or 32 where 64 does not fit the device (99 KB parts at
// head_dim 128). Throws naming the head dim and the limit when neither fits.
int choose_prefill_keys(const DeviceLimits& d, int head_dim, int elem_bytes);

// Capacity of a buffer that must hold `needed` items and now holds `current`: unchanged
// when it fits, else at least 1.5x the old capacity. Step metadata grows with the spans
// (listed blocks rise step by step), and every reallocation synchronises and discards the
// captured graphs, so growth is geometric rather than to the exact need.
int grown_capacity(int current, int needed);

// Remembers per device the largest value an attribute was raised to, so that a kernel's
// cudaFuncSetAttribute runs once per device (and again only for a larger need), never per
// launch and never only for the first device a process used. Thread-safe.
class PerDeviceSetting {
 public:
  // Calls apply(value) unless `device` already holds a value >= `value`; records the value
  // once apply returns (an apply that throws records nothing).
  void raise(int device, int value, const std::function<void(int)>& apply);
  int applied(int device) const;  // 0: never raised on `device`

 private:
  mutable std::mutex mutex_;
  std::vector<int> applied_;  // by device index
};

}  // namespace sspan::cuda
