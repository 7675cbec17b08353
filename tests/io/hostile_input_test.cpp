// Hostile model files, each a regression test for a crash, hang, unbounded read or
// silent acceptance found by fuzzing and by hand: deep JSON nesting, FIFOs and oversized
// files, sizes that overflow, links out of the model directory, strict grammar JSON.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "checkpoint_writer/checkpoint_writer.h"
#include "io/json_strict.h"
#include "io/untrusted_files.h"
#include "io/shard_index.h"
#include "raw_safetensors.h"
#include "sspan/config.h"
#include "sspan/span.h"
#include "sspan/tokenizer.h"
#include "support/test_paths.h"

namespace sspan::test {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr size_t kDeep = 100'000;  // a 200 KB text, far under every size limit

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }
std::string nested_objects(size_t depth) {
  std::string s;
  for (size_t i = 0; i < depth; ++i) s += "{\"a\":";
  return s + "1" + std::string(depth, '}');
}

std::string minimal_config(const std::string& extra = "") {
  return R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
             "num_attention_heads": 4, "rms_norm_eps": 1e-5, "max_position_embeddings": 512,
             "vocab_size": 96)" +
         extra + "}";
}

// The minimal config with some keys replaced.
std::string config_with(const json& overrides) {
  json c = json::parse(minimal_config());
  c.update(overrides);
  return c.dump();
}

std::string config_error(const std::string& text) {
  return error_of([&] { ModelConfig::from_json(text, "config.json"); });
}

// --- 1. nesting deep enough to overflow the stack of a recursive dump() or copy ---

TEST(HostileJson, DeepNestingIsRefusedAtParse) {
  for (const std::string& text : {nested_arrays(kDeep), nested_objects(kDeep)})
    EXPECT_THAT(error_of([&] { io::parse_json_strict(text, "deep.json"); }),
                AllOf(HasSubstr("deep.json"), HasSubstr("nested deeper than 64 levels")));
  // The bound is exact: 64 levels parse, 65 do not.
  EXPECT_NO_THROW(io::parse_json_strict(nested_arrays(io::kMaxJsonDepth), "ok.json"));
  EXPECT_THAT(error_of([] { io::parse_json_strict(nested_arrays(io::kMaxJsonDepth + 1), "x.json"); }),
              HasSubstr("nested deeper"));
}

TEST(HostileJson, DeepConfigValuesAreErrorsNamingTheFile) {
  for (const char* key : {"architectures", "rope_scaling", "bos_token_id", "eos_token_id", "torch_dtype"})
    EXPECT_THAT(config_error(minimal_config(fmt::format(R"(, "{}": {})", key, nested_arrays(kDeep)))),
                AllOf(HasSubstr("config.json"), HasSubstr("nested deeper")))
        << key;
}

TEST(HostileJson, DeepSafetensorsHeaderIsAnError) {
  const std::string shape = R"({"w": {"dtype": "F32", "shape": )" + nested_arrays(kDeep) +
                            R"(, "data_offsets": [0, 0]}})";
  const std::string meta = R"({"__metadata__": )" + nested_objects(kDeep) + "}";
  for (const std::string& header : {shape, meta})
    EXPECT_THAT(parse_error(raw_safetensors(header, "")), AllOf(HasSubstr("t.safetensors"), HasSubstr("nested deeper")));
}

TEST(HostileJson, ErrorMessagesQuoteValuesBriefly) {
  // A wrong value is described, never dumped whole into the message.
  std::string many = "[";
  for (int i = 0; i < 50'000; ++i) many += (i ? ",\"Gpt\"" : "\"Gpt\"");
  many += "]";
  const std::string msg = config_error(minimal_config(R"(, "architectures": )" + many));
  EXPECT_THAT(msg, HasSubstr(R"(["Gpt", "Gpt", "Gpt", "Gpt", ... (50000 in all)] does not include LlamaForCausalLM)"));
  EXPECT_LT(msg.size(), 500u);
  const std::string long_string = "\"" + std::string(100'000, 'x') + "\"";
  const std::string msg2 = config_error(minimal_config(R"(, "hidden_act": )" + long_string));
  EXPECT_THAT(msg2, HasSubstr("(cut, 100000 bytes)"));
  EXPECT_LT(msg2.size(), 500u);
  EXPECT_EQ(io::json_summary(json::parse("{\"a\": [1, 2]}")), "an object of 1 keys");
  EXPECT_EQ(io::json_summary(json(2.5)), "2.5");
}

// --- 2. config.json and the shard index: regular files of bounded size ---

TEST(HostileFiles, FifoConfigIsRefusedWithoutBlocking) {
  const auto dir = scratch_dir("fifo");
  ASSERT_EQ(::mkfifo((dir / "config.json").c_str(), 0600), 0);
  EXPECT_THAT(error_of([&] { ModelConfig::from_file(dir / "config.json"); }),
              AllOf(HasSubstr("config.json"), HasSubstr("not a regular file")));
  ASSERT_EQ(::mkfifo((dir / "grammar.json").c_str(), 0600), 0);
  EXPECT_THAT(error_of([&] { SpanGrammar::from_file(dir / "grammar.json"); }), HasSubstr("not a regular file"));
}

TEST(HostileFiles, FifoIndexIsRefusedWithoutBlocking) {
  const auto dir = scratch_dir("fifo_index");
  write_tiny_llama(dir, TinyLlamaSpec{});
  ASSERT_EQ(::mkfifo((dir / "model.safetensors.index.json").c_str(), 0600), 0);
  EXPECT_THAT(error_of([&] { Checkpoint::open(dir); }),
              AllOf(HasSubstr("model.safetensors.index.json"), HasSubstr("not a regular file")));
}

TEST(HostileFiles, OversizedConfigIndexAndTokenizerAreRefused) {
  const auto dir = scratch_dir("big");
  write_tiny_llama(dir, TinyLlamaSpec{});
  // Sparse files: the size check comes before any read.
  fs::resize_file(dir / "config.json", (size_t(1) << 20) + 1);
  EXPECT_THAT(error_of([&] { ModelConfig::from_file(dir / "config.json"); }),
              AllOf(HasSubstr("config.json"), HasSubstr("more than the limit")));
  write_bytes(dir / "model.safetensors.index.json", "");
  fs::resize_file(dir / "model.safetensors.index.json", (size_t(64) << 20) + 1);
  EXPECT_THAT(error_of([&] { Checkpoint::open(dir); }),
              AllOf(HasSubstr("model.safetensors.index.json"), HasSubstr("more than the limit")));
  write_bytes(dir / "tokenizer.model", "");
  fs::resize_file(dir / "tokenizer.model", (size_t(256) << 20) + 1);
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir / "tokenizer.model"); }),
              AllOf(HasSubstr("tokenizer.model"), HasSubstr("more than the limit")));
}

// A tokenizer file holding `bytes`, in a fresh directory.
fs::path tokenizer_file(const std::string& tag, const std::string& bytes) {
  const fs::path file = scratch_dir(tag) / "tokenizer.model";
  write_bytes(file, bytes);
  return file;
}

TEST(HostileFiles, GarbageTokenizerIsAnError) {
  // Starts like a ModelProto (field 1, length-delimited) but is not one.
  const fs::path file = tokenizer_file("junk_tok", "\x0anot a model proto");
  EXPECT_THAT(error_of([&] { Tokenizer::load(file); }),
              AllOf(HasSubstr(file.string()), HasSubstr("could not be loaded")));
}

// A SentencePiece ModelProto, protobuf-encoded by hand: repeated field 1 of
// {piece = 1: string, score = 2: float, type = 3: enum}.
std::string sentencepiece_proto(const std::vector<std::pair<std::string, int>>& pieces) {
  std::string out;
  for (const auto& [text, type] : pieces) {
    std::string p;
    p.push_back('\x0a');  // piece
    p.push_back(char(text.size()));
    p.append(text);
    p.append("\x15\0\0\0\0", 5);  // score 0.0
    p.push_back('\x18');            // type
    p.push_back(char(type));
    out.push_back('\x0a');
    out.push_back(char(p.size()));
    out.append(p);
  }
  return out;
}

TEST(HostileFiles, TokenizerPieceTheTrieCannotHoldIsAnError) {
  // Found by the sentencepiece fuzz target: a normal piece "\0" made the library's trie
  // builder throw its own exception type out of the tokenizer loader.
  const fs::path nul = tokenizer_file(
      "nul_tok", sentencepiece_proto({{"<unk>", 2}, {"<s>", 3}, {"</s>", 3}, {"a", 1}, {std::string(1, '\0'), 1}}));
  EXPECT_THAT(error_of([&] { Tokenizer::load(nul); }),
              AllOf(HasSubstr(nul.string()), HasSubstr("could not be loaded"), HasSubstr("zero-length key")));
  // The same model without that piece loads.
  EXPECT_NO_THROW(Tokenizer::load(tokenizer_file("ok_tok", sentencepiece_proto({{"<unk>", 2}, {"<s>", 3}, {"</s>", 3}, {"a", 1}}))));
}

// --- 4. sizes whose products overflow ---

TEST(HostileConfig, HeadProductsMustFitAnInt) {
  // 65,537 heads x 65,536 = 4,295,032,832: wraps in int to 65,536 and used to pass the
  // shape check of a 65,536-row q_proj.
  EXPECT_THAT(config_error(config_with({{"num_attention_heads", 65537}, {"num_key_value_heads", 1}, {"head_dim", 65536}})),
              AllOf(HasSubstr("config.json"), HasSubstr("num_attention_heads 65537 x head_dim 65536")));
  EXPECT_THAT(config_error(config_with({{"num_attention_heads", 1}, {"num_key_value_heads", 1}, {"head_dim", 1 << 30},
                                        {"hidden_size", 1 << 20}})),
              HasSubstr("more than 2^48 parameters"));
}

TEST(HostileConfig, ParameterCountMustFitInt64) {
  const std::string huge = R"({"model_type": "llama", "hidden_size": 2147483646, "intermediate_size": 2147483647,
      "num_hidden_layers": 2147483647, "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 2,
      "rms_norm_eps": 1e-5, "max_position_embeddings": 512, "vocab_size": 2147483647})";
  EXPECT_THAT(config_error(huge), AllOf(HasSubstr("config.json"), HasSubstr("num_hidden_layers 2147483647"),
                                        HasSubstr("more than 2^48 parameters")));
}

// --- 5. span grammar JSON goes through the strict parser ---

TEST(HostileGrammar, HugeNumbersAndDuplicateKeysAreErrors) {
  const std::string good = SpanGrammar::builtin("arith").to_json();
  std::string huge = good;
  huge.replace(huge.find("\"name\": \"arith\""), 15, "\"name\": \"arith\", \"n\": 1e999");
  EXPECT_THAT(error_of([&] { SpanGrammar::from_json(huge, "g.json"); }),
              AllOf(HasSubstr("span grammar g.json"), HasSubstr("invalid JSON")));
  std::string dup = good;
  dup.insert(1, "\"name\": \"other\", ");
  EXPECT_THAT(error_of([&] { SpanGrammar::from_json(dup, "g.json"); }),
              AllOf(HasSubstr("g.json"), HasSubstr("duplicate key 'name'")));
  EXPECT_THAT(error_of([&] { SpanGrammar::from_json(nested_arrays(kDeep), "g.json"); }), HasSubstr("nested deeper"));
}

// --- the shard index as a pure parser ---

TEST(HostileIndex, ShardNamesMustBeBareFileNames) {
  auto index = [](const std::string& shard) {
    return json{{"weight_map", {{"w", shard}}}}.dump();
  };
  EXPECT_EQ(io::parse_shard_index(index("model-1.safetensors"), "i.json").at("w"), "model-1.safetensors");
  for (const char* bad : {"../x.safetensors", "/etc/passwd", "a/b", "..", ".", ""})
    EXPECT_THAT(error_of([&] { io::parse_shard_index(index(bad), "i.json"); }), HasSubstr("i.json")) << bad;
  EXPECT_THAT(error_of([] { io::parse_shard_index(R"({"weight_map": {"w": 5}})", "i.json"); }),
              HasSubstr("shard is not a string (got 5)"));
}

// --- 10. links out of the model directory ---

TEST(HostileLinks, ShardLinkedOutsideTheDirectoryIsRefused) {
  const auto outside = scratch_dir("outside");
  write_tiny_llama(outside, TinyLlamaSpec{});
  const auto dir = scratch_dir("linked");
  fs::copy_file(outside / "config.json", dir / "config.json");
  fs::create_symlink(outside / "model.safetensors", dir / "model.safetensors");
  EXPECT_THAT(error_of([&] { Checkpoint::open(dir); }),
              AllOf(HasSubstr("model.safetensors"), HasSubstr("outside the model directory")));
  // The same through the index, and for config.json.
  const auto dir2 = scratch_dir("linked_index");
  fs::copy_file(outside / "config.json", dir2 / "config.json");
  fs::create_symlink(outside / "model.safetensors", dir2 / "shard.safetensors");
  json weight_map;
  for (const auto& t : tiny_llama_tensors(TinyLlamaSpec{})) weight_map[t.name] = "shard.safetensors";
  write_bytes(dir2 / "model.safetensors.index.json", json{{"weight_map", weight_map}}.dump());
  EXPECT_THAT(error_of([&] { Checkpoint::open(dir2); }),
              AllOf(HasSubstr("shard.safetensors"), HasSubstr("outside the model directory")));
  const auto dir3 = scratch_dir("linked_config");
  fs::create_symlink(outside / "config.json", dir3 / "config.json");
  EXPECT_THAT(error_of([&] { ModelConfig::from_file(dir3 / "config.json"); }),
              HasSubstr("outside the model directory"));
  // A dangling link is an error too, not a crash.
  const auto dir4 = scratch_dir("dangling");
  fs::create_symlink(dir4 / "nowhere", dir4 / "x.safetensors");
  EXPECT_THAT(error_of([&] { Checkpoint::open(dir4); }), HasSubstr("no weights found"));
}

TEST(HostileLinks, LinksInsideTheDirectoryAndIntoHfBlobsAreFollowed) {
  // Inside the directory: fine.
  const auto dir = scratch_dir("inside");
  write_tiny_llama(dir / "real", TinyLlamaSpec{});
  fs::create_symlink("real/model.safetensors", dir / "model.safetensors");
  EXPECT_EQ(Checkpoint::open(dir).num_files(), 1u);

  // The Hugging Face cache: snapshots/<rev>/<file> -> ../../blobs/<hash>.
  const auto repo = scratch_dir("hf") / "models--org--name";
  const auto snapshot = repo / "snapshots" / "0123abcd";
  fs::create_directories(repo / "blobs");
  fs::create_directories(snapshot);
  const auto staging = scratch_dir("staging");
  TinyLlamaSpec spec;
  spec.shards = 2;
  write_tiny_llama(staging, spec);
  int n = 0;
  for (const auto& e : fs::directory_iterator(staging)) {
    const std::string blob = "blob" + std::to_string(n++);
    fs::copy_file(e.path(), repo / "blobs" / blob);
    fs::create_symlink(fs::path("../../blobs") / blob, snapshot / e.path().filename());
  }
  const auto ck = Checkpoint::open(snapshot);
  EXPECT_EQ(ck.num_files(), 2u);
  EXPECT_EQ(ModelConfig::from_file(snapshot / "config.json").hidden_size, spec.hidden_size);

  // ... but not into blobs/ of a directory that is not a snapshot.
  const auto other = repo / "not-snapshots" / "rev";
  fs::create_directories(other);
  fs::create_symlink(fs::path("../../blobs/blob0"), other / "config.json");
  EXPECT_THAT(error_of([&] { ModelConfig::from_file(other / "config.json"); }), HasSubstr("outside the model directory"));
}

}  // namespace
}  // namespace sspan::test
