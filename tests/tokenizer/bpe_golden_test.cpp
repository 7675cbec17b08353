// BPE tokenizers against the reference libraries: ids for a few hundred strings
// (whitespace runs, newlines, digits, contractions, non-Latin scripts, emoji, special
// tokens) as the Hugging Face `tokenizers` package (and tiktoken, for the tiktoken file)
// gives them, the whole decode, and the streaming decode. Goldens and the small trained
// tokenizers: scripts/tokenizer_goldens.py. SmolLM2's real tokenizer (tokenizer.json and
// GGUF metadata) runs when scripts/fetch_smollm2.py has fetched the model.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sspan/tokenizer.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Case {
  std::string text;
  std::vector<int> ids;
  std::string decoded;
};

std::vector<Case> cases_of(const json& list) {
  std::vector<Case> out;
  for (const auto& c : list) out.push_back({c["text"], c["ids"].get<std::vector<int>>(), c["decoded"]});
  return out;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in) << p;
  return json::parse(in);
}

std::string stream_decode(const Tokenizer& tok, const std::vector<int>& ids) {
  StreamDecoder d(tok);
  std::string out;
  for (int id : ids) out += d.push(id);
  return out + d.finish();
}

// Every golden: encode gives the reference ids, decode the reference text, and the
// streamed pieces concatenate to the same text (leading dummy-prefix space kept).
void check_goldens(const Tokenizer& tok, const std::vector<Case>& cases, bool strips_space) {
  int failures = 0;
  for (const Case& c : cases) {
    const auto ids = tok.encode(c.text, /*add_bos=*/false);
    EXPECT_EQ(ids, c.ids) << tok.kind() << " text: '" << c.text << "'";
    EXPECT_EQ(tok.decode(c.ids), c.decoded) << tok.kind() << " ids of '" << c.text << "'";
    std::string streamed = stream_decode(tok, c.ids);
    if (strips_space && streamed.starts_with(' ')) streamed.erase(0, 1);
    EXPECT_EQ(streamed, c.decoded) << tok.kind() << " streamed '" << c.text << "'";
    failures += ids != c.ids;
    if (failures > 10) break;  // enough to see the pattern
  }
}

fs::path data_dir() { return test::source_dir() / "tests" / "data" / "tokenizers"; }

class BpeGolden : public ::testing::Test {
 protected:
  static const json& goldens() {
    static const json g = read_json(data_dir() / "golden.json");
    return g;
  }
};

TEST_F(BpeGolden, ByteLevelGpt2MatchesTokenizers) {
  const auto tok = Tokenizer::load(data_dir() / "byte_level_gpt2" / "tokenizer.json");
  EXPECT_EQ(tok.kind(), "tokenizer.json byte-level BPE");
  EXPECT_FALSE(tok.add_bos());  // tokenizer_config.json: add_bos_token false
  EXPECT_EQ(tok.eos_id(), 0);   // <|endoftext|>
  check_goldens(tok, cases_of(goldens()["cases"]["byte_level_gpt2"]), false);
}

TEST_F(BpeGolden, ByteLevelLlama3MatchesTokenizers) {
  const auto tok = Tokenizer::load(data_dir() / "byte_level_llama3" / "tokenizer.json");
  EXPECT_TRUE(tok.add_bos());  // the post-processor puts <|begin_of_text|> first
  EXPECT_EQ(tok.piece(tok.bos_id()), "<|begin_of_text|>");
  check_goldens(tok, cases_of(goldens()["cases"]["byte_level_llama3"]), false);
  EXPECT_EQ(tok.encode("Hi", true).front(), tok.bos_id());
}

TEST_F(BpeGolden, TiktokenMatchesTiktoken) {
  const auto tok = Tokenizer::load(data_dir() / "byte_level_llama3" / "tiktoken.model");
  EXPECT_EQ(tok.kind(), "tiktoken BPE (LLaMA 3 tokenizer.model)");
  EXPECT_EQ(tok.piece(tok.bos_id()), "<|begin_of_text|>");
  EXPECT_EQ(tok.vocab_size(), read_json(data_dir() / "byte_level_llama3" / "tokenizer.json")["added_tokens"].back()["id"].get<int>() + 1);
  check_goldens(tok, cases_of(goldens()["cases"]["tiktoken_llama3"]), false);
}

TEST_F(BpeGolden, SentencePieceStyleBpeMatchesTokenizers) {
  const auto tok = Tokenizer::load(data_dir() / "spm_bpe" / "tokenizer.json");
  EXPECT_EQ(tok.kind(), "tokenizer.json SentencePiece-style BPE");
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  check_goldens(tok, cases_of(goldens()["cases"]["spm_bpe"]), true);
}

TEST_F(BpeGolden, ByteLevelTokensYieldTheirRawBytes) {
  const auto tok = Tokenizer::load(data_dir() / "byte_level_gpt2" / "tokenizer.json");
  const std::string emoji = "\xF0\x9F\x98\x80";  // one character, several byte tokens here
  const auto ids = tok.encode(emoji, false);
  ASSERT_GT(ids.size(), 1u);
  std::string bytes;
  for (int id : ids) bytes += tok.token_bytes(id);
  EXPECT_EQ(bytes, emoji);
  StreamDecoder d(tok);
  EXPECT_EQ(d.push(ids[0]), "");  // an incomplete character is held
  std::string rest;
  for (size_t i = 1; i < ids.size(); ++i) rest += d.push(ids[i]);
  EXPECT_EQ(rest + d.finish(), emoji);
  EXPECT_EQ(tok.token_bytes(0), "");  // <|endoftext|> is special: no text
  EXPECT_TRUE(tok.is_control(0));
}

// Settings this engine does not implement are refused by name, never ignored.
TEST(TokenizerJson, UnsupportedSettingsAreRefusedByName) {
  const fs::path dir = test::scratch_dir("tok");
  const std::string bpe = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"model": {"type": "Unigram", "vocab": []}})", "Unigram"},
      {"{" + bpe + R"(, "normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel"}})", "NFC"},
      {"{" + bpe + R"(, "pre_tokenizer": {"type": "Whitespace"}})", "Whitespace"},
      {"{" + bpe + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[a-z]+"}, "behavior": "Isolated"}})",
       "[a-z]+"},
      {"{" + bpe + "}", "ByteLevel"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})",
       "two tokens"},
  };
  for (const auto& [text, phrase] : cases) {
    std::ofstream(dir / "tokenizer.json") << text;
    try {
      Tokenizer::load(dir / "tokenizer.json");
      ADD_FAILURE() << "loaded: " << text;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  }
}

// SmolLM2's own tokenizer, both as tokenizer.json and from the GGUF metadata.
TEST(SmolLM2Tokenizer, MatchesTokenizersFromJsonAndFromGguf) {
  const fs::path dir = test::smollm2_dir();
  if (dir.empty()) GTEST_SKIP() << test::smollm2_missing_message();
  const auto cases = cases_of(read_json(data_dir() / "smollm2_golden.json")["cases"]);
  for (const fs::path& file : {dir / "hf" / "tokenizer.json", test::smollm2_gguf()}) {
    SCOPED_TRACE(file.string());
    const auto tok = Tokenizer::load(file);
    EXPECT_EQ(tok.vocab_size(), 49152);
    EXPECT_FALSE(tok.add_bos());
    check_goldens(tok, cases, false);
  }
}

}  // namespace
}  // namespace sspan
