#include "cuda/row_routes.h"

#include <algorithm>

#include "common/check.h"
#include "model/backend.h"

namespace sspan::cuda {

RowRoutes route_rows(std::span<const int32_t> pos, std::span<const int32_t> slot, std::span<const RowMode> mode,
                     int32_t* tiles, int32_t* decode_rows, int min_run, std::span<const int32_t> decode_only) {
  const size_t n = pos.size();
  SSPAN_CHECK(slot.size() == n && mode.size() == n, "route_rows: {} positions, {} slots, {} modes", n, slot.size(),
              mode.size());
  SSPAN_CHECK(min_run >= 1, "route_rows: minimum run {} must be >= 1", min_run);
  // Rows a prefill tile may take.
  const auto tileable = [&](size_t i) {
    return mode[i] == RowMode::Dense && !std::binary_search(decode_only.begin(), decode_only.end(), int32_t(i));
  };
  RowRoutes r;
  for (size_t i = 0; i < n;) {
    // The run of tileable rows that starts at i (length 0 when row i is not one).
    size_t len = 0;
    if (tileable(i)) {
      len = 1;
      while (i + len < n && tileable(i + len) && slot[i + len] == slot[i] && pos[i + len] == pos[i + len - 1] + 1)
        ++len;
    }
    if (len >= size_t(min_run)) {
      for (size_t first = i; first < i + len; first += kPrefillTileRows) {
        const int rows = int(std::min<size_t>(kPrefillTileRows, i + len - first));
        tiles[2 * r.prefill_tiles] = int32_t(first);
        tiles[2 * r.prefill_tiles + 1] = rows;
        ++r.prefill_tiles;
        r.prefill_rows += rows;
        r.max_tile_rows = std::max(r.max_tile_rows, rows);
      }
      i += len;
    } else {
      const size_t stop = i + std::max<size_t>(len, 1);
      for (; i < stop; ++i) decode_rows[r.decode_rows++] = int32_t(i);
    }
  }
  return r;
}

}  // namespace sspan::cuda
