// parse_safetensors / SafetensorsFile: valid round trips, and one crafted file per
// validation rule with the specific error it must produce.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "raw_safetensors.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "support/test_paths.h"

namespace sspan::test {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A valid file: one F32 tensor "x" of shape [2, 2] (16 bytes).
const std::string kGoodHeader = R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
const std::string kData16(16, '\x01');

std::vector<float> read_values(const TensorInfo& t) {
  std::vector<float> out(size_t(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == DType::F32) {
      std::memcpy(&out[i], t.data + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      out[i] = t.dtype == DType::F16 ? half_to_float(h) : bf16_to_float(h);
    }
  }
  return out;
}

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  // Values exactly representable in F16 and BF16, so every dtype reads back equal.
  const std::vector<float> v = {0.5f, -1.25f, 3.0f, 0.0f, -0.0f, 1024.0f};
  const std::vector<TensorSpec> specs = {{"a.f32", DType::F32, {2, 3}, v},
                                         {"b.f16", DType::F16, {6}, v},
                                         {"c.bf16", DType::BF16, {3, 2}, v},
                                         {"d.empty", DType::F32, {0, 4}, {}},
                                         {"e.scalar", DType::F16, {}, {2.0f}}};
  const auto file = scratch_dir("st") / "m.safetensors";
  write_safetensors(file, specs, {{"format", "pt"}});
  const auto f = SafetensorsFile::open(file);
  ASSERT_EQ(f->tensors().size(), specs.size());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  for (const auto& s : specs) {
    const TensorInfo* t = f->find(s.name);
    ASSERT_NE(t, nullptr) << s.name;
    EXPECT_EQ(t->dtype, s.dtype) << s.name;
    EXPECT_EQ(t->shape, s.shape) << s.name;
    EXPECT_EQ(t->nbytes, s.values.size() * dtype_size(s.dtype)) << s.name;
    EXPECT_EQ(read_values(*t), s.values) << s.name;
  }
  EXPECT_EQ(f->find("missing"), nullptr);
}

TEST(Safetensors, TensorsComeInOffsetOrderWithDataPointers) {
  // Header lists "b" first but its data comes second.
  const std::string h = R"({"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},)"
                        R"("a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})";
  const std::string bytes = raw_safetensors(h, "abcdefgh");
  const auto hdr = parse_safetensors(as_bytes(bytes), "t.safetensors");
  ASSERT_EQ(hdr.tensors.size(), 2u);
  EXPECT_EQ(hdr.tensors[0].name, "a");
  EXPECT_EQ(hdr.tensors[1].name, "b");
  EXPECT_EQ(hdr.data_start, 8 + h.size());
  EXPECT_EQ(std::memcmp(hdr.tensors[1].data, "efgh", 4), 0);
}

TEST(Safetensors, AcceptsHeaderPaddedWithSpaces) {
  EXPECT_NO_THROW(parse_safetensors(as_bytes(raw_safetensors(kGoodHeader + "     ", kData16)), "t"));
}

TEST(Safetensors, RejectsFileShorterThanLengthField) {
  EXPECT_THAT(parse_error(std::string(5, '\0')), AllOf(HasSubstr("t.safetensors"), HasSubstr("5 bytes, too short")));
  EXPECT_THAT(parse_error(""), HasSubstr("0 bytes, too short"));
}

TEST(Safetensors, RejectsHugeHeaderLength) {
  std::string bytes = raw_safetensors(kGoodHeader, kData16);
  const uint64_t n = 100'000'001;
  std::memcpy(bytes.data(), &n, 8);
  EXPECT_THAT(parse_error(bytes), HasSubstr("header length 100000001 exceeds the limit"));
  const uint64_t max = ~uint64_t(0);
  std::memcpy(bytes.data(), &max, 8);
  EXPECT_THAT(parse_error(bytes), HasSubstr("exceeds the limit"));
}

TEST(Safetensors, RejectsHeaderLengthBeyondFile) {
  std::string bytes = raw_safetensors(kGoodHeader, "");
  const uint64_t n = kGoodHeader.size() + 1;
  std::memcpy(bytes.data(), &n, 8);
  EXPECT_THAT(parse_error(bytes), HasSubstr("runs past the end"));
}

TEST(Safetensors, RejectsOverlappingOffsets) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  EXPECT_THAT(parse_error(raw_safetensors(h, std::string(24, 'x'))),
              AllOf(HasSubstr("tensor 'b'"), HasSubstr("overlap tensor 'a'")));
}

TEST(Safetensors, RejectsGapBetweenTensors) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[20,36]}})";
  EXPECT_THAT(parse_error(raw_safetensors(h, std::string(36, 'x'))),
              AllOf(HasSubstr("tensor 'b'"), HasSubstr("gap after byte 16")));
}

TEST(Safetensors, RejectsDataNotStartingAtZero) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_THAT(parse_error(raw_safetensors(h, std::string(8, 'x'))), HasSubstr("gap after byte 0"));
}

TEST(Safetensors, RejectsTrailingBytes) {
  EXPECT_THAT(parse_error(raw_safetensors(kGoodHeader, kData16 + "tail")),
              HasSubstr("4 trailing bytes after the last tensor"));
}

TEST(Safetensors, RejectsDataShorterThanOffsets) {
  EXPECT_THAT(parse_error(raw_safetensors(kGoodHeader, std::string(8, 'x'))),
              HasSubstr("ends at byte 16 of the data section but the file holds only 8"));
}

TEST(Safetensors, RejectsShapeThatDisagreesWithOffsets) {
  const std::string h = R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})";
  EXPECT_THAT(parse_error(raw_safetensors(h, std::string(12, 'x')), "model.safetensors"),
              HasSubstr("model.safetensors: tensor 'x': data_offsets [0, 12] span 12 bytes but shape [2, 2] of F32 "
                        "needs 16"));
}

TEST(Safetensors, RejectsOffsetsEndingBeforeBegin) {
  const std::string h = R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})";
  EXPECT_THAT(parse_error(raw_safetensors(h, "")), HasSubstr("tensor 'x': data_offsets [8, 0] end before begin"));
}

TEST(Safetensors, RejectsMalformedOffsets) {
  for (const char* offs : {"[0]", "[0,16,16]", "[-1,15]", "[0,16.0]", "\"0,16\"", "[0,18446744073709551616]"}) {
    const std::string h = std::string(R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":)") + offs + "}}";
    EXPECT_THAT(parse_error(raw_safetensors(h, kData16)), HasSubstr("is not [begin, end]")) << offs;
  }
}

TEST(Safetensors, RejectsUnknownAndUnsupportedDtypes) {
  const std::string unknown = R"({"x":{"dtype":"Q7","shape":[2,2],"data_offsets":[0,16]}})";
  EXPECT_THAT(parse_error(raw_safetensors(unknown, kData16)), HasSubstr("tensor 'x': unknown dtype 'Q7'"));
  const std::string f64 = R"({"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})";
  EXPECT_THAT(parse_error(raw_safetensors(f64, kData16)), HasSubstr("tensor 'x': unsupported dtype F64"));
  const std::string not_string = R"({"x":{"dtype":7,"shape":[2,2],"data_offsets":[0,16]}})";
  EXPECT_THAT(parse_error(raw_safetensors(not_string, kData16)), HasSubstr("\"dtype\" is not a string"));
}

TEST(Safetensors, RejectsMissingFieldsAndNonObjectEntries) {
  EXPECT_THAT(parse_error(raw_safetensors(R"({"x":{"shape":[2,2],"data_offsets":[0,16]}})", kData16)),
              HasSubstr("tensor 'x': missing \"dtype\""));
  EXPECT_THAT(parse_error(raw_safetensors(R"({"x":{"dtype":"F32","data_offsets":[0,16]}})", kData16)),
              HasSubstr("tensor 'x': missing \"shape\""));
  EXPECT_THAT(parse_error(raw_safetensors(R"({"x":{"dtype":"F32","shape":[2,2]}})", kData16)),
              HasSubstr("tensor 'x': missing \"data_offsets\""));
  EXPECT_THAT(parse_error(raw_safetensors(R"({"x":[1,2]})", "")), HasSubstr("tensor 'x': entry is not a JSON object"));
}

TEST(Safetensors, RejectsDuplicateTensorNames) {
  const std::string h = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  EXPECT_THAT(parse_error(raw_safetensors(h, kData16)), HasSubstr("duplicate key 'x'"));
}

TEST(Safetensors, RejectsDuplicateFieldInsideEntry) {
  const std::string h = R"({"x":{"dtype":"F16","dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  EXPECT_THAT(parse_error(raw_safetensors(h, kData16)), HasSubstr("duplicate key 'dtype'"));
}

TEST(Safetensors, RejectsBadJson) {
  EXPECT_THAT(parse_error(raw_safetensors(R"({"x": {"dtype": )", "")),
              AllOf(HasSubstr("t.safetensors: header: invalid JSON")));
  EXPECT_THAT(parse_error(raw_safetensors(kGoodHeader + "}", kData16)), HasSubstr("invalid JSON"));
  // A number too large for a double is a range error inside the JSON parser (found by
  // sspan-fuzz-safetensors); it must surface as the same clean error.
  const std::string huge = R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8e9223372036854775808]}})";
  EXPECT_THAT(parse_error(raw_safetensors(huge, kData16)), AllOf(HasSubstr("invalid JSON"), HasSubstr("overflow")));
}

TEST(Safetensors, RejectsNonObjectHeader) {
  EXPECT_THAT(parse_error(raw_safetensors("[1, 2]", "")), HasSubstr("header is a JSON array, not an object"));
  EXPECT_THAT(parse_error(raw_safetensors("\"x\"", "")), HasSubstr("header is a JSON string, not an object"));
}

TEST(Safetensors, RejectsInvalidUtf8) {
  for (const std::string bad : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82"}) {
    const std::string h = "{\"x" + bad + "\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    EXPECT_THAT(parse_error(raw_safetensors(h, kData16)), HasSubstr("not valid UTF-8 (byte 3")) << bad.size();
  }
}

TEST(Safetensors, RejectsBadMetadata) {
  const std::string t = R"("x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  EXPECT_THAT(parse_error(raw_safetensors(R"({"__metadata__":["a"],)" + t + "}", kData16)),
              HasSubstr("__metadata__ is not a JSON object"));
  EXPECT_THAT(parse_error(raw_safetensors(R"({"__metadata__":{"k":1},)" + t + "}", kData16)),
              HasSubstr("__metadata__ value of 'k' is not a string"));
}

TEST(Safetensors, RejectsNegativeAndOverflowingShapes) {
  auto with_shape = [](const std::string& shape) {
    return raw_safetensors(R"({"x":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,16]}})", kData16);
  };
  EXPECT_THAT(parse_error(with_shape("[-4]")), HasSubstr("shape entry -4 is not an integer in [0, 2^62)"));
  EXPECT_THAT(parse_error(with_shape("[4.0]")), HasSubstr("shape entry 4.0 is not an integer"));
  EXPECT_THAT(parse_error(with_shape("[9223372036854775808]")), HasSubstr("is not an integer in [0, 2^62)"));
  EXPECT_THAT(parse_error(with_shape("[4294967296,4294967296]")), HasSubstr("too many elements (overflow)"));
  EXPECT_THAT(parse_error(with_shape("{}")), HasSubstr("\"shape\" is not an array"));
}

TEST(Safetensors, OpenNamesTheFile) {
  const auto dir = scratch_dir("open");
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(dir / "absent.safetensors"); }),
              AllOf(HasSubstr("absent.safetensors"), HasSubstr("cannot open")));
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(dir); }), HasSubstr("not a regular file"));
  write_bytes(dir / "empty.safetensors", "");
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(dir / "empty.safetensors"); }),
              AllOf(HasSubstr("empty.safetensors"), HasSubstr("too short")));
  write_bytes(dir / "bad.safetensors", raw_safetensors(kGoodHeader, kData16 + "x"));
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(dir / "bad.safetensors"); }),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("1 trailing bytes")));
}

}  // namespace
}  // namespace sspan::test
