#pragma once
// Which attention kernel each row of a step goes to. Plain C++ (no CUDA headers), built
// in every configuration so that tests/cuda_host checks it without a device.
//
// Dense prompt rows are the tensor-core prefill kernel's work: a tile of up to
// kPrefillTileRows consecutive rows of one slot reads each K/V tile once for all of them.
// Sparse rows, and dense rows that come alone or in short runs (decode), are the decode
// kernel's: it reads exactly a row's attended positions and splits long contexts. A step
// that holds both (a prompt whose lines are partly sparse, or prefill mixed with decode
// rows) launches both kernels, each over its own rows.
#include <cstdint>
#include <span>

namespace sspan {
enum class RowMode : uint8_t;  // model/backend.h
}

namespace sspan::cuda {

inline constexpr int kPrefillTileRows = 64;    // query rows of one prefill tile (kernels::kPrefillRows)
inline constexpr int kMinPrefillRunRows = 16;  // one 16-row MMA fragment: shorter runs are decode rows

struct RowRoutes {
  int prefill_tiles = 0;  // tiles written: tiles[2i] = first row, tiles[2i + 1] = row count
  int prefill_rows = 0;   // rows inside those tiles
  int decode_rows = 0;    // rows written to decode_rows[], in step order
  int max_tile_rows = 0;  // longest tile
};

// Runs of consecutive Dense rows of one slot at consecutive positions with at least
// `min_run` rows become prefill tiles (cut every kPrefillTileRows rows); every other row
// goes to the decode kernel, and so do the rows of `decode_only` (ascending: the rows
// whose attention mass is recorded, which only the decode kernel keeps). pos, slot and
// mode hold n rows; `tiles` has room for [n][2] and `decode_rows` for [n].
RowRoutes route_rows(std::span<const int32_t> pos, std::span<const int32_t> slot, std::span<const RowMode> mode,
                     int32_t* tiles, int32_t* decode_rows, int min_run = kMinPrefillRunRows,
                     std::span<const int32_t> decode_only = {});

}  // namespace sspan::cuda
