// Damaged files never crash the parser: every truncation of a valid file and thousands
// of random header corruptions end in success or sspan::Error, nothing else. When a
// corrupted file still parses, its tensors must lie inside the file.
#include <gtest/gtest.h>

#include <random>

#include "raw_safetensors.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "support/test_paths.h"

namespace sspan::test {
namespace {

std::string valid_file() {
  const auto path = scratch_dir("robust") / "m.safetensors";
  write_safetensors(path,
                    {{"w.a", DType::F32, {2, 3}, {1, 2, 3, 4, 5, 6}},
                     {"w.b", DType::F16, {4}, {1, 2, 3, 4}},
                     {"w.c", DType::BF16, {1, 1}, {7}}},
                    {{"format", "pt"}});
  return read_bytes(path);
}

// Parse; on success check that every tensor's bytes lie within the image.
// Returns false on sspan::Error. Any other exception escapes and fails the test.
bool parses_within_bounds(const std::string& bytes) {
  try {
    const auto h = parse_safetensors(as_bytes(bytes), "fuzzed.safetensors");
    const auto* begin = reinterpret_cast<const std::byte*>(bytes.data());
    for (const auto& t : h.tensors) {
      EXPECT_GE(t.data, begin + h.data_start) << t.name;
      EXPECT_LE(t.data + t.nbytes, begin + bytes.size()) << t.name;
    }
    return true;
  } catch (const sspan::Error&) {
    return false;
  }
}

TEST(SafetensorsRobustness, EveryTruncationIsAnError) {
  const std::string file = valid_file();
  ASSERT_TRUE(parses_within_bounds(file));
  for (size_t len = 0; len < file.size(); ++len)
    EXPECT_FALSE(parses_within_bounds(file.substr(0, len))) << "prefix of " << len << " bytes parsed";
}

TEST(SafetensorsRobustness, RandomHeaderCorruptionNeverCrashes) {
  const std::string file = valid_file();
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  const size_t header_end = size_t(8 + n);  // flips cover the length field and the JSON
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<size_t> pos(0, header_end - 1);
  std::uniform_int_distribution<int> byte(0, 255), count(1, 4);
  int parsed = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string bad = file;
    for (int k = count(rng); k > 0; --k) bad[pos(rng)] = char(byte(rng));
    parsed += parses_within_bounds(bad);
  }
  // Most corruptions must be caught; a few (a changed letter in a name or in metadata)
  // leave a valid file.
  EXPECT_LT(parsed, 20000);
  RecordProperty("still_valid", parsed);
}

}  // namespace
}  // namespace sspan::test
