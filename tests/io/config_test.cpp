// ModelConfig::from_json: fields and defaults as transformers reads them, and a clear
// refusal for every setting the engine cannot run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "raw_safetensors.h"
#include "sspan/config.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "support/test_paths.h"

namespace sspan::test {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

// The smallest config accepted: required keys only.
json minimal() {
  return json{{"model_type", "llama"},       {"hidden_size", 64},   {"intermediate_size", 160},
              {"num_hidden_layers", 2},      {"num_attention_heads", 4}, {"rms_norm_eps", 1e-5},
              {"max_position_embeddings", 512}, {"vocab_size", 96}};
}

ModelConfig parse(const json& j) { return ModelConfig::from_json(j.dump(), "config.json"); }
std::string config_error(const json& j) {
  return error_of([&] { parse(j); });
}
json with(json j, const std::string& key, json value) {
  j[key] = std::move(value);
  return j;
}
json without(json j, const std::string& key) {
  j.erase(key);
  return j;
}

TEST(Config, ReadsTheWritersConfig) {
  TinyLlamaSpec spec;
  spec.num_kv_heads = 2;
  spec.head_dim = 32;
  spec.dtype = DType::BF16;
  spec.tie_word_embeddings = true;
  const auto dir = write_tiny_llama(scratch_dir("cfg"), spec);
  const auto c = ModelConfig::from_file(dir / "config.json");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 160);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_dim(), 128);
  EXPECT_EQ(c.kv_dim(), 64);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_EQ(c.vocab_size, 96);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
  EXPECT_THAT(c.eos_token_ids, ElementsAre(2));
}

TEST(Config, DefaultsMatchTransformers) {
  const auto c = parse(minimal());
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_THAT(c.eos_token_ids, ElementsAre(2));
  EXPECT_EQ(c.torch_dtype, DType::F32);
  // null counts as absent, as in transformers.
  const auto n = parse(with(with(minimal(), "rope_scaling", nullptr), "num_key_value_heads", nullptr));
  EXPECT_EQ(n.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_EQ(n.num_key_value_heads, 4);
}

TEST(Config, EosMayBeAList) {
  EXPECT_THAT(parse(with(minimal(), "eos_token_id", {2, 7})).eos_token_ids, ElementsAre(2, 7));
  EXPECT_THAT(parse(with(minimal(), "eos_token_id", 5)).eos_token_ids, ElementsAre(5));
  EXPECT_THAT(config_error(with(minimal(), "eos_token_id", json::array())), HasSubstr("empty list"));
  EXPECT_THAT(config_error(with(minimal(), "eos_token_id", {2, "x"})), HasSubstr("\"eos_token_id\" must be an integer"));
  EXPECT_THAT(config_error(with(minimal(), "eos_token_id", 96)), HasSubstr("eos_token_id 96 is outside the vocabulary"));
}

TEST(Config, RefusesOtherArchitectures) {
  EXPECT_THAT(config_error(with(minimal(), "architectures", {"MistralForCausalLM"})),
              AllOf(HasSubstr("config.json"), HasSubstr("does not include LlamaForCausalLM")));
  EXPECT_THAT(config_error(with(minimal(), "model_type", "gpt2")), HasSubstr("model_type 'gpt2' is not supported"));
  EXPECT_THAT(config_error(without(minimal(), "model_type")), HasSubstr("neither \"architectures\" nor \"model_type\""));
  EXPECT_THAT(config_error(with(minimal(), "architectures", "LlamaForCausalLM")),
              HasSubstr("\"architectures\" must be a list of strings"));
  EXPECT_NO_THROW(parse(with(without(minimal(), "model_type"), "architectures", {"LlamaForCausalLM"})));
}

TEST(Config, RefusesBiasesAndOtherActivations) {
  EXPECT_THAT(config_error(with(minimal(), "attention_bias", true)), HasSubstr("attention_bias is true"));
  EXPECT_THAT(config_error(with(minimal(), "mlp_bias", true)), HasSubstr("mlp_bias is true"));
  EXPECT_THAT(config_error(with(minimal(), "hidden_act", "gelu")), HasSubstr("hidden_act 'gelu' is not supported"));
  EXPECT_NO_THROW(parse(with(with(minimal(), "attention_bias", false), "hidden_act", "silu")));
}

TEST(Config, RopeScalingVariants) {
  const auto lin = parse(with(minimal(), "rope_scaling", {{"type", "linear"}, {"factor", 2.0}}));
  EXPECT_EQ(lin.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_DOUBLE_EQ(lin.rope_scaling.factor, 2.0);
  const json l3 = {{"rope_type", "llama3"},
                   {"factor", 8.0},
                   {"low_freq_factor", 1.0},
                   {"high_freq_factor", 4.0},
                   {"original_max_position_embeddings", 8192}};
  const auto c3 = parse(with(minimal(), "rope_scaling", l3));
  EXPECT_EQ(c3.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c3.rope_scaling.factor, 8.0);
  EXPECT_EQ(c3.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(parse(with(minimal(), "rope_scaling", {{"rope_type", "default"}})).rope_scaling.type,
            RopeScaling::Type::None);
  // transformers >= 5 writes rope_parameters, with rope_theta inside.
  const auto v5 = parse(with(minimal(), "rope_parameters", {{"rope_type", "default"}, {"rope_theta", 500000.0}}));
  EXPECT_DOUBLE_EQ(v5.rope_theta, 500000.0);

  EXPECT_THAT(config_error(with(minimal(), "rope_scaling", {{"type", "yarn"}, {"factor", 4.0}})),
              HasSubstr("rope_scaling type 'yarn' is not supported"));
  EXPECT_THAT(config_error(with(minimal(), "rope_scaling", {{"type", "linear"}})),
              HasSubstr("missing required key \"rope_scaling.factor\""));
  json bad3 = l3;
  bad3.erase("low_freq_factor");
  EXPECT_THAT(config_error(with(minimal(), "rope_scaling", bad3)),
              HasSubstr("missing required key \"rope_scaling.low_freq_factor\""));
  bad3 = l3;
  bad3["high_freq_factor"] = 1.0;
  EXPECT_THAT(config_error(with(minimal(), "rope_scaling", bad3)), HasSubstr("must be greater than low_freq_factor"));
  EXPECT_THAT(config_error(with(minimal(), "rope_scaling", "linear")), HasSubstr("must be an object or null"));
}

TEST(Config, RefusesMissingKeys) {
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "rms_norm_eps", "max_position_embeddings", "vocab_size"}) {
    EXPECT_THAT(config_error(without(minimal(), key)), HasSubstr(std::string("missing required key \"") + key))
        << key;
  }
  EXPECT_THAT(config_error(with(minimal(), "hidden_size", nullptr)), HasSubstr("missing required key \"hidden_size\""));
}

TEST(Config, RefusesHeadsThatDoNotDivide) {
  EXPECT_THAT(config_error(with(minimal(), "num_attention_heads", 5)),
              HasSubstr("hidden_size 64 is not divisible by num_attention_heads 5"));
  EXPECT_THAT(config_error(with(minimal(), "num_key_value_heads", 3)),
              HasSubstr("num_key_value_heads 3 does not divide num_attention_heads 4"));
  EXPECT_THAT(config_error(with(minimal(), "head_dim", 15)), HasSubstr("head_dim 15 must be even"));
  EXPECT_EQ(parse(with(with(minimal(), "num_attention_heads", 5), "head_dim", 16)).q_dim(), 80);
}

TEST(Config, RefusesWrongTypesAndNonPositiveSizes) {
  EXPECT_THAT(config_error(with(minimal(), "hidden_size", "64")), HasSubstr("\"hidden_size\" must be an integer"));
  EXPECT_THAT(config_error(with(minimal(), "hidden_size", 64.0)), HasSubstr("\"hidden_size\" must be an integer"));
  EXPECT_THAT(config_error(with(minimal(), "hidden_size", true)), HasSubstr("\"hidden_size\" must be an integer"));
  EXPECT_THAT(config_error(with(minimal(), "hidden_size", 10000000000LL)), HasSubstr("out of range"));
  EXPECT_THAT(config_error(with(minimal(), "num_hidden_layers", 0)), HasSubstr("\"num_hidden_layers\" must be positive"));
  EXPECT_THAT(config_error(with(minimal(), "vocab_size", -3)), HasSubstr("\"vocab_size\" must be positive"));
  EXPECT_THAT(config_error(with(minimal(), "rms_norm_eps", "1e-5")), HasSubstr("\"rms_norm_eps\" must be a number"));
  EXPECT_THAT(config_error(with(minimal(), "rope_theta", -1.0)), HasSubstr("\"rope_theta\" must be positive"));
  EXPECT_THAT(config_error(with(minimal(), "tie_word_embeddings", "yes")), HasSubstr("must be true or false"));
  EXPECT_THAT(config_error(with(minimal(), "torch_dtype", "float8")), HasSubstr("torch_dtype 'float8' is not supported"));
  EXPECT_EQ(parse(with(minimal(), "dtype", "float16")).torch_dtype, DType::F16);
}

TEST(Config, RefusesMalformedJson) {
  EXPECT_THAT(error_of([] { ModelConfig::from_json("{\"hidden_size\": ", "cfg.json"); }),
              AllOf(HasSubstr("cfg.json"), HasSubstr("invalid JSON")));
  EXPECT_THAT(error_of([] { ModelConfig::from_json("[1]", "cfg.json"); }), HasSubstr("config is a JSON array"));
  std::string dup = minimal().dump();
  dup.insert(1, "\"vocab_size\": 5, ");
  EXPECT_THAT(error_of([&] { ModelConfig::from_json(dup, "cfg.json"); }), HasSubstr("duplicate key 'vocab_size'"));
  EXPECT_THAT(error_of([] { ModelConfig::from_file("/nonexistent/config.json"); }),
              HasSubstr("/nonexistent/config.json: cannot open"));
}

TEST(Config, NumParametersCountsEveryTensor) {
  for (bool tied : {false, true}) {
    TinyLlamaSpec spec;
    spec.num_kv_heads = 2;
    spec.tie_word_embeddings = tied;
    const auto c = ModelConfig::from_json(tiny_llama_config_json(spec), "config.json");
    int64_t n = 0;
    for (const auto& t : tiny_llama_tensors(spec)) n += int64_t(t.values.size());
    EXPECT_EQ(c.num_parameters(), n) << "tied=" << tied;
  }
}

}  // namespace
}  // namespace sspan::test
