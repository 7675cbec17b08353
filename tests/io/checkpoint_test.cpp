// Checkpoint::open over the directory layouts of Hugging Face exports, and the refusals:
// unsafe or missing shards, index/shard disagreement, pickle-only directories.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "raw_safetensors.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "support/test_paths.h"

namespace sspan::test {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr const char* kIndex = "model.safetensors.index.json";

void expect_all_tensors(const Checkpoint& ck, const TinyLlamaSpec& spec) {
  const auto expected = tiny_llama_tensors(spec);
  ASSERT_EQ(ck.tensor_names().size(), expected.size());
  size_t bytes = 0;
  for (const auto& e : expected) {
    const TensorInfo& t = ck.get(e.name);
    EXPECT_EQ(t.shape, e.shape) << e.name;
    ASSERT_EQ(t.dtype, DType::F32) << e.name;
    ASSERT_EQ(t.nbytes, e.values.size() * 4) << e.name;
    EXPECT_EQ(std::memcmp(t.data, e.values.data(), t.nbytes), 0) << e.name;
    bytes += t.nbytes;
  }
  EXPECT_EQ(ck.total_bytes(), bytes);
}

nlohmann::json read_index(const fs::path& dir) { return nlohmann::json::parse(read_bytes(dir / kIndex)); }
void write_index(const fs::path& dir, const nlohmann::json& j) { write_bytes(dir / kIndex, j.dump(2)); }

std::string open_error(const fs::path& dir) {
  return error_of([&] { Checkpoint::open(dir); });
}

TEST(Checkpoint, LoadsSingleFile) {
  TinyLlamaSpec spec;
  const auto dir = write_tiny_llama(scratch_dir("single"), spec);
  const auto ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.num_files(), 1u);
  expect_all_tensors(ck, spec);
}

TEST(Checkpoint, LoadsShards) {
  TinyLlamaSpec spec;
  spec.shards = 3;
  spec.num_kv_heads = 2;
  const auto dir = write_tiny_llama(scratch_dir("sharded"), spec);
  const auto ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.num_files(), 3u);
  expect_all_tensors(ck, spec);
}

TEST(Checkpoint, DataOutlivesTheOriginalObject) {
  TinyLlamaSpec spec;
  spec.shards = 2;
  const auto dir = write_tiny_llama(scratch_dir("copy"), spec);
  std::optional<Checkpoint> copy;
  { copy = Checkpoint::open(dir); }
  expect_all_tensors(*copy, spec);
}

TEST(Checkpoint, LoadsOddlyNamedFilesAndRejectsDuplicatesAcrossThem) {
  const auto dir = scratch_dir("odd");
  write_safetensors(dir / "part-a.safetensors", {{"a", DType::F32, {1}, {1}}});
  write_safetensors(dir / "part-b.safetensors", {{"b", DType::F16, {2}, {1, 2}}});
  const auto ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.num_files(), 2u);
  EXPECT_EQ(ck.tensor_names(), (std::vector<std::string>{"a", "b"}));
  write_safetensors(dir / "part-c.safetensors", {{"a", DType::F32, {1}, {2}}});
  EXPECT_THAT(open_error(dir), AllOf(HasSubstr("part-c.safetensors"), HasSubstr("tensor 'a' is also in another")));
}

TEST(Checkpoint, MissingTensorNamesTensorAndDirectory) {
  const auto dir = write_tiny_llama(scratch_dir("missing"), TinyLlamaSpec{});
  const auto ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.find("lm_head.bias"), nullptr);
  EXPECT_THAT(error_of([&] { ck.get("lm_head.bias"); }),
              AllOf(HasSubstr(dir.string()), HasSubstr("no tensor 'lm_head.bias'")));
}

TEST(Checkpoint, RejectsIndexPointingAtTheWrongShard) {
  TinyLlamaSpec spec;
  spec.shards = 2;
  const auto dir = write_tiny_llama(scratch_dir("wrong"), spec);
  auto index = read_index(dir);
  index["weight_map"]["model.embed_tokens.weight"] = "model-00002-of-00002.safetensors";
  write_index(dir, index);
  EXPECT_THAT(open_error(dir), HasSubstr("tensor 'model.embed_tokens.weight' is mapped to shard "
                                         "'model-00002-of-00002.safetensors' but that shard does not hold it"));
}

TEST(Checkpoint, RejectsShardTensorsTheIndexDoesNotList) {
  TinyLlamaSpec spec;
  spec.shards = 2;
  const auto dir = write_tiny_llama(scratch_dir("unlisted"), spec);
  auto index = read_index(dir);
  index["weight_map"].erase("model.norm.weight");
  write_index(dir, index);
  EXPECT_THAT(open_error(dir), HasSubstr("holds tensor 'model.norm.weight' that the weight_map does not list"));
}

TEST(Checkpoint, RejectsShardPathsOutsideTheDirectory) {
  TinyLlamaSpec spec;
  spec.shards = 2;
  const auto dir = write_tiny_llama(scratch_dir("escape"), spec);
  const auto original = read_index(dir);
  for (const std::string shard : {"../model-00001-of-00002.safetensors", "/etc/passwd",
                                  "sub/model-00001-of-00002.safetensors", "..\\x.safetensors", "..", "."}) {
    auto index = original;
    index["weight_map"]["model.embed_tokens.weight"] = shard;
    write_index(dir, index);
    EXPECT_THAT(open_error(dir), AllOf(HasSubstr(kIndex), HasSubstr("'" + shard + "'"),
                                       HasSubstr("not a plain file name in the model directory")))
        << shard;
  }
  auto index = original;
  index["weight_map"]["model.embed_tokens.weight"] = "";
  write_index(dir, index);
  EXPECT_THAT(open_error(dir), HasSubstr("maps to an empty shard name"));
  index["weight_map"]["model.embed_tokens.weight"] = 3;
  write_index(dir, index);
  EXPECT_THAT(open_error(dir), HasSubstr("tensor 'model.embed_tokens.weight': shard is not a string"));
}

TEST(Checkpoint, RejectsIndexNamingAMissingShard) {
  TinyLlamaSpec spec;
  spec.shards = 2;
  const auto dir = write_tiny_llama(scratch_dir("gone"), spec);
  fs::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_THAT(open_error(dir), HasSubstr("maps to shard 'model-00002-of-00002.safetensors', which does not exist"));
}

TEST(Checkpoint, RejectsMalformedIndex) {
  TinyLlamaSpec spec;
  spec.shards = 2;
  const auto dir = write_tiny_llama(scratch_dir("badindex"), spec);
  write_bytes(dir / kIndex, "{\"weight_map\": ");
  EXPECT_THAT(open_error(dir), AllOf(HasSubstr(kIndex), HasSubstr("invalid JSON")));
  write_bytes(dir / kIndex, R"({"metadata": {}})");
  EXPECT_THAT(open_error(dir), HasSubstr("missing \"weight_map\" object"));
  write_bytes(dir / kIndex, R"({"weight_map": {}})");
  EXPECT_THAT(open_error(dir), HasSubstr("\"weight_map\" lists no tensors"));
  write_bytes(dir / kIndex, R"({"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}})");
  EXPECT_THAT(open_error(dir), HasSubstr("duplicate key 'a'"));
}

TEST(Checkpoint, CorruptShardErrorNamesTheShard) {
  TinyLlamaSpec spec;
  spec.shards = 2;
  const auto dir = write_tiny_llama(scratch_dir("corrupt"), spec);
  const auto shard = dir / "model-00002-of-00002.safetensors";
  std::string bytes = read_bytes(shard);
  write_bytes(shard, bytes.substr(0, bytes.size() - 1));
  EXPECT_THAT(open_error(dir), AllOf(HasSubstr("model-00002-of-00002.safetensors"), HasSubstr("file holds only")));
}

TEST(Checkpoint, RefusesPickleOnlyDirectories) {
  const auto dir = scratch_dir("pickle");
  write_bytes(dir / "pytorch_model.bin", "not really a pickle");
  EXPECT_THAT(open_error(dir), AllOf(HasSubstr("only PyTorch pickle weights found (pytorch_model.bin)"),
                                     HasSubstr("safe_serialization=True")));
}

TEST(Checkpoint, RejectsMissingOrEmptyDirectories) {
  const auto dir = scratch_dir("empty");
  EXPECT_THAT(open_error(dir / "nope"), HasSubstr("does not exist"));
  EXPECT_THAT(open_error(dir), AllOf(HasSubstr(dir.string()), HasSubstr("no weights found")));
  write_bytes(dir / "file", "x");
  EXPECT_THAT(open_error(dir / "file"), HasSubstr("is neither a directory nor a .safetensors file"));
}

}  // namespace
}  // namespace sspan::test
