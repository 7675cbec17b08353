// route_rows: dense prompt runs become prefill tiles, everything else decode rows.
#include "cuda/row_routes.h"

#include <gtest/gtest.h>

#include <vector>

#include "model/backend.h"
#include "sspan/error.h"

namespace sspan::cuda {
namespace {

struct Step {
  std::vector<int32_t> pos, slot;
  std::vector<RowMode> mode;
  void add_run(int s, int first_pos, int count, RowMode m) {
    for (int i = 0; i < count; ++i) {
      pos.push_back(first_pos + i);
      slot.push_back(s);
      mode.push_back(m);
    }
  }
};

struct Routed {
  RowRoutes r;
  std::vector<std::pair<int, int>> tiles;  // (first row, rows)
  std::vector<int32_t> decode;
};

Routed route(const Step& s, int min_run = kMinPrefillRunRows, const std::vector<int32_t>& decode_only = {}) {
  std::vector<int32_t> tiles(2 * s.pos.size() + 2, -1), decode(s.pos.size() + 1, -1);
  Routed out;
  out.r = route_rows(s.pos, s.slot, s.mode, tiles.data(), decode.data(), min_run, decode_only);
  for (int i = 0; i < out.r.prefill_tiles; ++i) out.tiles.emplace_back(tiles[size_t(2 * i)], tiles[size_t(2 * i + 1)]);
  out.decode.assign(decode.begin(), decode.begin() + out.r.decode_rows);
  EXPECT_EQ(tiles[size_t(2 * out.r.prefill_tiles)], -1) << "wrote past the tiles it reports";
  EXPECT_EQ(decode[size_t(out.r.decode_rows)], -1) << "wrote past the decode rows it reports";
  return out;
}

TEST(RowRoutes, DensePromptIsCutIntoTilesOf64) {
  Step s;
  s.add_run(0, 0, 150, RowMode::Dense);
  const Routed r = route(s);
  EXPECT_EQ(r.tiles, (std::vector<std::pair<int, int>>{{0, 64}, {64, 64}, {128, 22}}));
  EXPECT_TRUE(r.decode.empty());
  EXPECT_EQ(r.r.prefill_rows, 150);
  EXPECT_EQ(r.r.max_tile_rows, 64);
}

TEST(RowRoutes, DecodeRowsOfDenseSequencesGoToTheDecodeKernel) {
  Step s;  // one row per slot, as every decode step
  for (int slot = 0; slot < 5; ++slot) s.add_run(slot, 100 + slot, 1, RowMode::Dense);
  const Routed r = route(s);
  EXPECT_TRUE(r.tiles.empty());
  EXPECT_EQ(r.decode, (std::vector<int32_t>{0, 1, 2, 3, 4}));
}

TEST(RowRoutes, AMixedStepFeedsBothKernels) {
  Step s;
  s.add_run(0, 0, 40, RowMode::Dense);    // rows 0-39: a prompt prefix
  s.add_run(0, 40, 5, RowMode::Sparse);   // rows 40-44: a sparse line of the same prompt
  s.add_run(0, 45, 30, RowMode::Dense);   // rows 45-74: dense again
  s.add_run(1, 7, 1, RowMode::Dense);     // row 75: a decode row of another sequence
  s.add_run(2, 300, 1, RowMode::Sparse);  // row 76: a sparse decode row
  s.add_run(3, 0, 20, RowMode::Dense);    // rows 77-96: a second prompt
  const Routed r = route(s);
  EXPECT_EQ(r.tiles, (std::vector<std::pair<int, int>>{{0, 40}, {45, 30}, {77, 20}}));
  EXPECT_EQ(r.decode, (std::vector<int32_t>{40, 41, 42, 43, 44, 75, 76}));
  EXPECT_EQ(r.r.prefill_rows + r.r.decode_rows, int(s.pos.size()));
}

TEST(RowRoutes, ShortDenseRunsAndBrokenRunsAreDecodeRows) {
  Step s;
  s.add_run(0, 0, kMinPrefillRunRows - 1, RowMode::Dense);  // too short
  s.add_run(1, 0, 10, RowMode::Dense);                      // 10 + 10 rows of slot 1, but
  s.add_run(1, 50, 10, RowMode::Dense);                     // positions jump: two short runs
  const Routed r = route(s);
  EXPECT_TRUE(r.tiles.empty());
  EXPECT_EQ(r.r.decode_rows, int(s.pos.size()));
  for (int i = 0; i < r.r.decode_rows; ++i) EXPECT_EQ(r.decode[size_t(i)], i);
}

TEST(RowRoutes, ARunEndsWhereTheSlotChanges) {
  Step s;
  s.add_run(0, 0, 16, RowMode::Dense);
  s.add_run(1, 16, 16, RowMode::Dense);  // positions continue, the slot does not
  const Routed r = route(s);
  EXPECT_EQ(r.tiles, (std::vector<std::pair<int, int>>{{0, 16}, {16, 16}}));
}

TEST(RowRoutes, MinimumRunOfOneSendsEveryDenseRowToPrefill) {
  Step s;
  s.add_run(0, 5, 1, RowMode::Dense);
  s.add_run(1, 9, 1, RowMode::Sparse);
  const Routed r = route(s, 1);
  EXPECT_EQ(r.tiles, (std::vector<std::pair<int, int>>{{0, 1}}));
  EXPECT_EQ(r.decode, (std::vector<int32_t>{1}));
}

TEST(RowRoutes, RecordedRowsAndPerHeadRowsGoToTheDecodeKernel) {
  Step s;
  s.add_run(0, 0, 20, RowMode::Dense);    // rows 0-19, row 10 recorded: two runs of 10 and 9
  s.add_run(1, 30, 1, RowMode::Dense);    // row 20: recorded, alone
  s.add_run(2, 40, 1, RowMode::PerHead);  // row 21
  s.add_run(3, 0, 16, RowMode::Dense);    // rows 22-37: a prompt
  const Routed r = route(s, kMinPrefillRunRows, {10, 20});
  EXPECT_EQ(r.tiles, (std::vector<std::pair<int, int>>{{22, 16}}));
  EXPECT_EQ(r.decode, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                                            21}));
  // Even where every Dense row would be a tile of its own.
  const Routed one = route(s, 1, {10, 20});
  EXPECT_EQ(one.tiles, (std::vector<std::pair<int, int>>{{0, 10}, {11, 9}, {22, 16}}));
  EXPECT_EQ(one.decode, (std::vector<int32_t>{10, 20, 21}));
}

TEST(RowRoutes, MismatchedLengthsAreErrors) {
  const std::vector<int32_t> pos{0, 1}, slot{0};
  const std::vector<RowMode> mode{RowMode::Dense, RowMode::Dense};
  int32_t tiles[4], decode[2];
  EXPECT_THROW(route_rows(pos, slot, mode, tiles, decode), Error);
}

}  // namespace
}  // namespace sspan::cuda
