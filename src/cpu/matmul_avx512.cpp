// AVX-512 matmul kernels (AVX-512F; fp16 and bf16 weights converted in registers), compiled
// for those instructions whatever the rest of the build targets (the dispatcher in
// matmul.cpp runs them only on CPUs that have them).
//
// They follow the order of matmul_kernels.h exactly, which accumulates each output in 8
// lanes: a 512-bit register holds the 8 lanes of two outputs, weight rows 2p and 2p + 1 of
// the same x row, so every fused multiply-add does the work of two 256-bit ones. Per 8
// values of k a tile of kMR x-rows by kNR weight rows loads kNR / 2 weight pairs (two
// 128-bit halves, joined and converted to 16 fp32), broadcasts each x row's 8 values to
// both halves and runs kMR * kNR / 2 multiply-adds: 6 x 8 holds 24 accumulators, 4 weight
// pairs and an x vector in the 32 zmm registers, 24 FMAs per 10 loads. Blocks walk their
// weight tiles in the outer loop, every x tile of one prefetching a share of the next
// (for_each_tile).
// Weights packed in groups of kNR rows (the layout of matmul_kernels.h; the CPU backend
// packs its weights so) come as one stream with one load per pair, and batch-1 decode
// runs four accumulation chains at once instead of one.
// hsum4, load1 and for_each_tile repeat matmul_avx2.cpp's on purpose: an inline function
// shared by files built for different instruction sets could be linked in its AVX-512
// form for both.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12 warns inside its own avx512fintrin.h about _mm*_undefined_*() (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "cpu/matmul_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

// The headers above keep the baseline target: only this file's own functions use AVX-512.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
#endif

namespace sspan::cpu {
namespace {

constexpr int kMR = 6, kNR = 8, kPairs = kNR / 2;
// One x row (batch-1 decode, memory-bound) over row-major weights walks one weight row at a
// time, so a block's weights are read as one sequential stream: on a Zen 4 part, 2 or 4
// rows side by side (2-4 streams 1.5 KB apart) read the 110M shapes 20-30% slower, and batch-1 decode ran
// 74-80 tokens/s against 87-92 with one (`sspan-bench decode --batch 1 --pp 0`, alternating
// runs). The row's pair partner is itself, so the extra loads hit L1.
constexpr int kGemvNR = 1;

// 16 stored 16-bit weights as fp32.
template <DType D>
inline __m512 widen16(__m256i h) {
  if constexpr (D == DType::F16) return _mm512_cvtph_ps(h);
  else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));  // bf16: high half of fp32
}

// k..k+7 of weight rows a (low half) and b (high half) as 16 fp32.
template <DType D>
inline __m512 load_pair(const std::byte* a, const std::byte* b, int64_t k) {
  if constexpr (D == DType::F32) {
    const __m256 lo = _mm256_loadu_ps(reinterpret_cast<const float*>(a) + k);
    const __m256 hi = _mm256_loadu_ps(reinterpret_cast<const float*>(b) + k);
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
  } else {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(a) + k));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(b) + k));
    return widen16<D>(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
  }
}

// Packed weights (matmul_kernels.h, G = kNR): pair p of one 8-column chunk of a group, rows
// 2p and 2p + 1 side by side in memory, so one load.
template <DType D>
inline __m512 load_packed_pair(const std::byte* chunk, int p) {
  if constexpr (D == DType::F32) return _mm512_loadu_ps(reinterpret_cast<const float*>(chunk) + 16 * p);
  else return widen16<D>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(chunk) + 16 * p)));
}

template <DType D>
inline float load1(const std::byte* row, int64_t k) {
  if constexpr (D == DType::F32) return reinterpret_cast<const float*>(row)[k];
  else if constexpr (D == DType::F16) return _cvtsh_ss(reinterpret_cast<const uint16_t*>(row)[k]);
  else return bf16_to_float(reinterpret_cast<const uint16_t*>(row)[k]);
}

// The weights of the next tile column, prefetched by the x tiles of this one: tile `phase`
// of `period` takes every period-th step of its k loop, so the stream is spread over all
// of them (p = nullptr: nothing to prefetch).
struct Ahead {
  const std::byte* p = nullptr;
  int phase = 0, period = 1;
  bool at(int64_t step) const { return p && (period == 1 || step % period == phase); }  // no division at 1
};

// x[k..k+7] in both 256-bit halves.
inline __m512 broadcast8(const float* x) {
  return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(x))));
}

// [sum(a), sum(b), sum(c), sum(d)], each ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)):
// the reduction of matmul_kernels.h.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// The 8-lane halves of one accumulator (outputs 2p and 2p + 1).
inline __m256 low_half(__m512 a) { return _mm512_castps512_ps256(a); }
inline __m256 high_half(__m512 a) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)); }

// The sums of the 4 outputs two accumulators hold.
inline __m128 sum_two_pairs(__m512 a, __m512 b) { return hsum4(low_half(a), high_half(a), low_half(b), high_half(b)); }

// s[0 .. 2 * NP): the sums of the 2 * NP outputs whose lanes acc holds, two per register.
template <int NP>
inline void reduce_pairs(const __m512 (&acc)[NP], float* s) {
  for (int p = 0; p + 1 < NP; p += 2) _mm_storeu_ps(s + 2 * p, sum_two_pairs(acc[p], acc[p + 1]));
  if constexpr (NP % 2 == 1) {  // the last pair alone
    const __m256 zero = _mm256_setzero_ps();
    _mm_storeu_ps(s + 2 * (NP - 1), hsum4(low_half(acc[NP - 1]), high_half(acc[NP - 1]), zero, zero));
  }
}

// y[i * ldy + j] for i < MR, j < nr (2 * NP - 1 <= nr <= 2 * NP) over the whole of K.
// ahead: the weight rows the next tile column reads, a cache line per row at its share of
// the steps of 64 bytes of k.
template <DType D, int MR, int NP>
void tile(const float* x, int64_t ldx, const std::byte* w, int64_t w_stride, int64_t K, float* y, int64_t ldy,
          int64_t nr, Ahead ahead) {
  constexpr int64_t kLine = 64 / int64_t(dtype_size(D));  // weights per cache line
  const int64_t K8 = K - K % 8;
  // Row pointers of each pair; an odd last row pairs with itself and its copy is dropped.
  const std::byte* row[2 * NP];
  for (int j = 0; j < 2 * NP; ++j) row[j] = w + std::min<int64_t>(j, nr - 1) * w_stride;
  __m512 acc[MR][NP];
  for (int i = 0; i < MR; ++i)
    for (int p = 0; p < NP; ++p) acc[i][p] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K8; k += 8) {
    if (k % kLine == 0 && ahead.at(k / kLine))
      for (int j = 0; j < 2 * NP; ++j) __builtin_prefetch(ahead.p + j * w_stride + k * int64_t(dtype_size(D)), 0, 3);
    __m512 wv[NP];
    for (int p = 0; p < NP; ++p) wv[p] = load_pair<D>(row[2 * p], row[2 * p + 1], k);
    for (int i = 0; i < MR; ++i) {
      __m512 xv = broadcast8(x + i * ldx + k);
      __asm__("" : "+v"(xv));  // keep xv in a register: re-loading it for every FMA costs load slots
      for (int p = 0; p < NP; ++p) acc[i][p] = _mm512_fmadd_ps(xv, wv[p], acc[i][p]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    alignas(16) float s[2 * NP + 2];
    reduce_pairs<NP>(acc[i], s);
    for (int64_t j = 0; j < nr; ++j) {
      float t = 0.f;
      for (int64_t k = K8; k < K; ++k) t = std::fma(x[i * ldx + k], load1<D>(row[j], k), t);
      y[i * ldy + j] = s[j] + t;
    }
  }
}

// A tile of MR x-rows by one packed group of kNR weight rows (storing nr <= kNR outputs):
// the group's chunks in order, kChunk bytes each, then the rows' tails. ahead: the next
// group, its chunks at this tile's share of the chunk steps.
template <DType D, int MR>
void packed_tile(const float* x, int64_t ldx, const std::byte* w, int64_t K, float* y, int64_t ldy, int64_t nr,
                 Ahead ahead) {
  constexpr int64_t kElem = D == DType::F32 ? 4 : 2, kChunk = kNR * 8 * kElem;
  const int64_t K8 = K - K % 8;
  __m512 acc[MR][kPairs];
  for (int i = 0; i < MR; ++i)
    for (int p = 0; p < kPairs; ++p) acc[i][p] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K8; k += 8) {
    const std::byte* chunk = w + k / 8 * kChunk;
    if (ahead.at(k / 8))
      for (int64_t line = 0; line < kChunk; line += 64) __builtin_prefetch(ahead.p + k / 8 * kChunk + line, 0, 3);
    __m512 wv[kPairs];
    for (int p = 0; p < kPairs; ++p) wv[p] = load_packed_pair<D>(chunk, p);
    for (int i = 0; i < MR; ++i) {
      __m512 xv = broadcast8(x + i * ldx + k);
      __asm__("" : "+v"(xv));  // as in tile()
      for (int p = 0; p < kPairs; ++p) acc[i][p] = _mm512_fmadd_ps(xv, wv[p], acc[i][p]);
    }
  }
  const std::byte* tails = w + K8 / 8 * kChunk;  // row j's K - K8 columns at j * (K - K8)
  // No tails and a whole group: the 8 sums in one store. y = s + t with t = +0 is s, since s
  // is never -0 (every lane starts at +0, and x + +0 is +0 for x = -0).
  if (K8 == K && nr == kNR) {
    for (int i = 0; i < MR; ++i) {
      const __m128 lo = sum_two_pairs(acc[i][0], acc[i][1]), hi = sum_two_pairs(acc[i][2], acc[i][3]);
      _mm256_storeu_ps(y + i * ldy, _mm256_set_m128(hi, lo));
    }
    return;
  }
  for (int i = 0; i < MR; ++i) {
    alignas(16) float s[2 * kPairs + 2];
    reduce_pairs<kPairs>(acc[i], s);
    for (int64_t j = 0; j < nr; ++j) {
      const std::byte* tail = tails + j * (K - K8) * kElem;
      float t = 0.f;
      for (int64_t k = K8; k < K; ++k) t = std::fma(x[i * ldx + k], load1<D>(tail, k - K8), t);
      y[i * ldy + j] = s[j] + t;
    }
  }
}

template <DType D, int MR>
void tile_row(const float* x, int64_t ldx, const std::byte* w, int64_t w_stride, int64_t K, float* y, int64_t ldy,
              int64_t nr, Ahead ahead) {
  switch ((nr + 1) / 2) {
    case 4: return tile<D, MR, 4>(x, ldx, w, w_stride, K, y, ldy, nr, ahead);
    case 3: return tile<D, MR, 3>(x, ldx, w, w_stride, K, y, ldy, nr, ahead);
    case 2: return tile<D, MR, 2>(x, ldx, w, w_stride, K, y, ldy, nr, ahead);
    default: return tile<D, MR, 1>(x, ldx, w, w_stride, K, y, ldy, nr, ahead);
  }
}

static_assert(kPairs == 4 && kMR == 6, "tile_row and for_each_tile dispatch tiles of up to 6 x 8");

// tile(MR, x, y, o, nr, t, tiles) for every tile of x rows by `step` weight rows of a
// block, with MR as a template constant (1..kMR), nr <= step the weight rows the tile
// stores, and t the x tile of `tiles`. Weight columns are the outer loop: all x tiles of a
// column run back to back, so the weights come from memory once and are reused from L1,
// and every tile of a column prefetches its share of the next column's weights. The
// stream from memory then overlaps all the FMAs of the block, not only the first x tile's:
// with x tiles outermost, the first tile waited on memory and the later ones computed
// with the memory idle (`sspan-bench matmul --weights memory`: 5-15% faster at 16-64 rows).
template <class Tile>
void for_each_tile(const MatmulBlock& b, int64_t step, Tile&& tile) {
  const int tiles = int((b.m + kMR - 1) / kMR);
  for (int64_t o = 0; o < b.n; o += step) {
    const int64_t nr = std::min<int64_t>(step, b.n - o);
    for (int t = 0; t < tiles; ++t) {
      const int64_t i = int64_t(t) * kMR;
      const float* x = b.x + i * b.ldx;
      float* y = b.y + i * b.ldy + o;
      switch (std::min<int64_t>(kMR, b.m - i)) {
        case 6: tile(std::integral_constant<int, 6>{}, x, y, o, nr, t, tiles); break;
        case 5: tile(std::integral_constant<int, 5>{}, x, y, o, nr, t, tiles); break;
        case 4: tile(std::integral_constant<int, 4>{}, x, y, o, nr, t, tiles); break;
        case 3: tile(std::integral_constant<int, 3>{}, x, y, o, nr, t, tiles); break;
        case 2: tile(std::integral_constant<int, 2>{}, x, y, o, nr, t, tiles); break;
        default: tile(std::integral_constant<int, 1>{}, x, y, o, nr, t, tiles); break;
      }
    }
  }
}

// b.w: packed groups of kNR rows from a group's start (matmul_kernels.h); b.ldw is K.
template <DType D>
void packed_block(const MatmulBlock& b) {
  const auto* w = static_cast<const std::byte*>(b.w);
  const int64_t group_bytes = kNR * b.K * int64_t(dtype_size(D));
  for_each_tile(b, kNR, [&](auto MR, const float* x, float* y, int64_t o, int64_t nr, int t, int tiles) {
    const std::byte* wo = w + o / kNR * group_bytes;
    const Ahead ahead{o + kNR < b.n ? wo + group_bytes : nullptr, t, tiles};
    packed_tile<D, decltype(MR)::value>(x, b.ldx, wo, b.K, y, b.ldy, nr, ahead);
  });
}

template <DType D>
void block(const MatmulBlock& b) {
  const auto* w = static_cast<const std::byte*>(b.w);
  const int64_t w_stride = b.ldw * int64_t(dtype_size(D));
  const int64_t step = b.m == 1 ? kGemvNR : kNR;
  for_each_tile(b, step, [&](auto MR, const float* x, float* y, int64_t o, int64_t nr, int t, int tiles) {
    const std::byte* wo = w + o * w_stride;
    const Ahead ahead{o + 2 * step <= b.n ? wo + step * w_stride : nullptr, t, tiles};
    tile_row<D, decltype(MR)::value>(x, b.ldx, wo, w_stride, b.K, y, b.ldy, nr, ahead);
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

const MatmulKernels* avx512_matmul_kernels() {
  static const MatmulKernels k{"avx512", kMR, kNR, block<DType::F32>, block<DType::F16>, block<DType::BF16>,
                               kNR, packed_block<DType::F32>, packed_block<DType::F16>, packed_block<DType::BF16>};
  return &k;
}

}  // namespace sspan::cpu

#else  // not x86-64, or a compiler without target attributes

namespace sspan::cpu {
const MatmulKernels* avx512_matmul_kernels() { return nullptr; }
}  // namespace sspan::cpu

#endif
