// AVX2 + FMA + F16C matmul kernels, compiled for those instructions whatever the rest of
// the build targets (the dispatcher in matmul.cpp runs them only on CPUs that have them).
//
// A tile of kMR x-rows by kNR weight rows keeps its kMR * kNR partial sums in registers
// (8 lanes each, the order of matmul_kernels.h) while K streams: per 8 values of k, kNR
// weight vectors are loaded and converted to fp32 in registers, kMR x vectors are loaded,
// and kMR * kNR fused multiply-adds run. 4 x 3 uses 12 + 3 + 1 of the 16 ymm registers:
// 7 loads per 12 FMAs, which two load ports and two FMA pipes sustain. A block walks its x
// tiles in the outer loop, so an x tile stays in L1 while the block's weights (sized by
// matmul.cpp to stay in L2) pass under it. The first x tile is the one that brings the
// block's weights in from memory; it prefetches the next tile's weight rows as it goes,
// which the hardware prefetcher alone does not keep up with (decode at batch 16 gained
// about a quarter, batch 1 reads its weights faster too: `sspan-bench matmul`). The
// AVX-512 kernels walk the weight tiles outermost instead; here that measured 6-17%
// slower at 16-512 rows (SSPAN_CPU_ISA=avx2 on an Intel Xeon): a 4-row x tile is re-read
// from L2 for every 3-row weight group. Weights
// packed in groups of kNR rows (matmul_kernels.h; the CPU backend packs its weights so)
// make a tile's rows one stream: batch-1 decode on the 110M shape ran 1.7x faster on a
// Zen 4 part restricted to these kernels (SSPAN_CPU_ISA=avx2), batch 16 1.06-1.24x.
#include "cpu/matmul_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace sspan::cpu {
namespace {

constexpr int kMR = 4, kNR = 3;

// 8 consecutive weights of a row, as fp32; and one, for the K % 8 tail.
template <DType D>
inline __m256 load8(const void* row, int64_t k) {
  if constexpr (D == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + k);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k));
    if constexpr (D == DType::F16) return _mm256_cvtph_ps(h);
    else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));  // bf16: high half of fp32
  }
}

template <DType D>
inline float load1(const void* row, int64_t k) {
  if constexpr (D == DType::F32) return static_cast<const float*>(row)[k];
  else if constexpr (D == DType::F16) return _cvtsh_ss(static_cast<const uint16_t*>(row)[k]);
  else return bf16_to_float(static_cast<const uint16_t*>(row)[k]);
}

// [sum(a), sum(b), sum(c), sum(d)], each ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// y[i * ldy + j] for i < MR, j < NR over the whole of K. ahead: the kNR weight rows the
// next tile reads (nullptr: none), prefetched a cache line per row every 64 bytes of k.
template <DType D, int MR, int NR>
void tile(const float* x, int64_t ldx, const std::byte* w, int64_t w_stride, int64_t K, float* y, int64_t ldy,
          const std::byte* ahead) {
  constexpr int64_t kLine = 64 / int64_t(dtype_size(D));  // weights per cache line
  const int64_t K8 = K - K % 8;
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K8; k += 8) {
    if (ahead && k % kLine == 0)
      for (int j = 0; j < kNR; ++j) __builtin_prefetch(ahead + j * w_stride + k * int64_t(dtype_size(D)), 0, 3);
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load8<D>(w + j * w_stride, k);
    for (int i = 0; i < MR; ++i) {
      __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
      __asm__("" : "+x"(xv));  // keep xv in a register: re-loading it for every FMA costs load slots
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    alignas(16) float s[4];
    _mm_store_ps(s, hsum4(acc[i][0], NR > 1 ? acc[i][1 % NR] : zero, NR > 2 ? acc[i][2 % NR] : zero, zero));
    for (int j = 0; j < NR; ++j) {
      float t = 0.f;
      for (int64_t k = K8; k < K; ++k) t = std::fma(x[i * ldx + k], load1<D>(w + j * w_stride, k), t);
      y[i * ldy + j] = s[j] + t;
    }
  }
}

// A tile of MR x-rows by one packed group of kNR weight rows (matmul_kernels.h, G = kNR),
// storing nr <= kNR outputs: the group's 8-column chunks in order, row j's 8 values at
// j * 8 of each, then the rows' tails; one stream instead of kNR. ahead: the next group
// (nullptr: none), prefetched at the same offset.
template <DType D, int MR>
void packed_tile(const float* x, int64_t ldx, const std::byte* w, int64_t K, float* y, int64_t ldy, int64_t nr,
                 const std::byte* ahead) {
  constexpr int64_t kElem = D == DType::F32 ? 4 : 2, kChunk = kNR * 8 * kElem;
  const int64_t K8 = K - K % 8;
  __m256 acc[MR][kNR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNR; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K8; k += 8) {
    const std::byte* chunk = w + k / 8 * kChunk;
    if (ahead)
      for (int64_t line = 0; line < kChunk; line += 64) __builtin_prefetch(ahead + k / 8 * kChunk + line, 0, 3);
    __m256 wv[kNR];
    for (int j = 0; j < kNR; ++j) wv[j] = load8<D>(chunk, 8 * j);
    for (int i = 0; i < MR; ++i) {
      __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
      __asm__("" : "+x"(xv));  // as in tile()
      for (int j = 0; j < kNR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  const std::byte* tails = w + K8 / 8 * kChunk;  // row j's K - K8 columns at j * (K - K8)
  for (int i = 0; i < MR; ++i) {
    alignas(16) float s[4];
    _mm_store_ps(s, hsum4(acc[i][0], acc[i][1], acc[i][2], _mm256_setzero_ps()));
    for (int64_t j = 0; j < nr; ++j) {
      const std::byte* tail = tails + j * (K - K8) * kElem;
      float t = 0.f;
      for (int64_t k = K8; k < K; ++k) t = std::fma(x[i * ldx + k], load1<D>(tail, k - K8), t);
      y[i * ldy + j] = s[j] + t;
    }
  }
}
static_assert(kNR == 3, "packed_tile reduces three rows");

template <DType D, int MR>
void tile_row(const float* x, int64_t ldx, const std::byte* w, int64_t w_stride, int64_t K, float* y, int64_t ldy,
              int64_t nr, const std::byte* ahead) {
  switch (nr) {
    case 3: return tile<D, MR, 3>(x, ldx, w, w_stride, K, y, ldy, ahead);
    case 2: return tile<D, MR, 2>(x, ldx, w, w_stride, K, y, ldy, ahead);
    default: return tile<D, MR, 1>(x, ldx, w, w_stride, K, y, ldy, ahead);
  }
}

// tile(MR, x, y, o, nr, first) for every register tile of block b: x tiles outermost (an
// x tile stays in L1 while the block's weights, sized by matmul.cpp to stay in L2, pass
// under it), MR a std::integral_constant of the tile's x rows, first for the first x tile
// (the one that brings the weights in from memory).
template <class Tile>
void for_each_tile(const MatmulBlock& b, Tile&& tile) {
  for (int64_t i = 0; i < b.m; i += kMR) {
    const float* x = b.x + i * b.ldx;
    float* y = b.y + i * b.ldy;
    const int64_t mr = std::min<int64_t>(kMR, b.m - i);
    for (int64_t o = 0; o < b.n; o += kNR) {
      const int64_t nr = std::min<int64_t>(kNR, b.n - o);
      switch (mr) {
        case 4: tile(std::integral_constant<int, 4>{}, x, y + o, o, nr, i == 0); break;
        case 3: tile(std::integral_constant<int, 3>{}, x, y + o, o, nr, i == 0); break;
        case 2: tile(std::integral_constant<int, 2>{}, x, y + o, o, nr, i == 0); break;
        default: tile(std::integral_constant<int, 1>{}, x, y + o, o, nr, i == 0); break;
      }
    }
  }
}

template <DType D>
void block(const MatmulBlock& b) {
  const auto* w = static_cast<const std::byte*>(b.w);
  const int64_t w_stride = b.ldw * int64_t(dtype_size(D));
  for_each_tile(b, [&](auto MR, const float* x, float* y, int64_t o, int64_t nr, bool first) {
    const std::byte* wo = w + o * w_stride;
    // The first x tile prefetches the next tile's rows while computing, so the stream
    // never stalls.
    const std::byte* ahead = first && o + 2 * kNR <= b.n ? wo + kNR * w_stride : nullptr;
    tile_row<D, decltype(MR)::value>(x, b.ldx, wo, w_stride, b.K, y, b.ldy, nr, ahead);
  });
}

// b.w: packed groups of kNR rows from a group's start (matmul_kernels.h); b.ldw is K.
template <DType D>
void packed_block(const MatmulBlock& b) {
  const auto* w = static_cast<const std::byte*>(b.w);
  const int64_t group_bytes = kNR * b.K * int64_t(dtype_size(D));
  for_each_tile(b, [&](auto MR, const float* x, float* y, int64_t o, int64_t nr, bool first) {
    const std::byte* wo = w + o / kNR * group_bytes;
    const std::byte* ahead = first && o + kNR < b.n ? wo + group_bytes : nullptr;
    packed_tile<D, decltype(MR)::value>(x, b.ldx, wo, b.K, y, b.ldy, nr, ahead);
  });
}

}  // namespace
}  // namespace sspan::cpu

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace sspan::cpu {

const MatmulKernels* avx2_matmul_kernels() {
  static const MatmulKernels k{"avx2", kMR, kNR, block<DType::F32>, block<DType::F16>, block<DType::BF16>,
                               kNR, packed_block<DType::F32>, packed_block<DType::F16>, packed_block<DType::BF16>};
  return &k;
}

}  // namespace sspan::cpu

#else  // not x86-64, or a compiler without target attributes

namespace sspan::cpu {
const MatmulKernels* avx2_matmul_kernels() { return nullptr; }
}  // namespace sspan::cpu

#endif
