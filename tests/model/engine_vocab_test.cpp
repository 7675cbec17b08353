// The model's vocabulary against its tokenizer: padding ids past the tokenizer are never
// sampled (and stated once at load), a mismatched pair is an error, and a tokenizer with
// no BOS token encodes prompts without one. Uses the tokenizers the project ships.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint_writer/checkpoint_writer.h"
#include "sspan/engine.h"
#include "sspan/error.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path arith_tokenizer() { return test::source_dir() / "models/arith-tiny/tokenizer.model"; }  // 300 pieces
fs::path gpt2_tokenizer() { return test::source_dir() / "tests/data/tokenizers/byte_level_gpt2/tokenizer.json"; }

EngineOptions options(const fs::path& model, const fs::path& tokenizer) {
  EngineOptions o;
  o.model_dir = model;
  o.tokenizer_file = tokenizer;
  o.max_context = 256;
  o.threads = 2;
  return o;
}

fs::path tiny_model(int vocab) {
  TinyLlamaSpec spec;
  spec.vocab_size = vocab;
  spec.hidden_size = 32;
  spec.num_heads = 2;
  spec.num_kv_heads = 2;
  spec.intermediate_size = 64;
  return write_tiny_llama(test::scratch_dir("model"), spec);
}

TEST(EngineVocabulary, PaddedIdsAreNeverSampled) {
  // 300 tokenizer pieces, 316 model ids: at temperature 50 every id is about equally
  // likely, so 240 unmasked draws would hit the 16 padding ids with near certainty.
  Engine e(options(tiny_model(316), arith_tokenizer()));
  GenerateOptions g;
  g.max_new_tokens = 240;
  g.stop_at_eos = false;
  g.sampling = {.temperature = 50.f, .top_k = 0, .top_p = 1.f, .seed = 7};
  const auto r = e.generate({"1 + 2"}, g)[0];
  ASSERT_EQ(r.ids.size(), 240u);
  for (int id : r.ids) EXPECT_LT(id, 300);
  g.sampling.temperature = 0.f;  // greedy (argmax) is masked too
  const auto greedy = e.generate({"1 + 2"}, g)[0];
  for (int id : greedy.ids) EXPECT_LT(id, 300);
}

TEST(EngineVocabulary, MismatchedTokenizerIsAnError) {
  try {
    Engine e(options(tiny_model(32000), arith_tokenizer()));
    FAIL() << "a 300-token tokenizer with a 32000-id model loaded";
  } catch (const Error& err) {
    EXPECT_THAT(err.what(), HasSubstr("do not belong together"));
    EXPECT_THAT(err.what(), HasSubstr("300"));
  }
  EXPECT_THROW(Engine(options(tiny_model(200), arith_tokenizer())), Error);  // tokenizer larger than the model
}

TEST(EngineVocabulary, TokenizerWithoutBosEncodesPromptsWithoutOne) {
  // The byte-level test tokenizer has no BOS token (tokenizer_config.json: bos_token null).
  Engine e(options(tiny_model(900), gpt2_tokenizer()));
  ASSERT_EQ(e.tokenizer().bos_id(), -1);
  GenerateOptions g;
  g.max_new_tokens = 4;
  g.stop_at_eos = false;
  const auto r = e.generate({"Hello world"}, g)[0];
  EXPECT_EQ(r.prompt_ids, e.tokenizer().encode("Hello world", false));
  EXPECT_EQ(r.ids.size(), 4u);
  const auto s = e.score("Hello", " world", {});
  EXPECT_EQ(s.prompt_ids, e.tokenizer().encode("Hello", false));
  try {
    e.generate({""}, g);
    FAIL() << "an empty prompt without BOS generated";
  } catch (const Error& err) {
    EXPECT_THAT(err.what(), HasSubstr("prompt is empty"));
  }
}

}  // namespace
}  // namespace sspan
