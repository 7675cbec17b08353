// Tokenizer against the real LLaMA tokenizer: ids as Hugging Face LlamaTokenizer gives
// them, round trips, byte fallback and continuation encoding.
#include <gtest/gtest.h>

#include <fstream>

#include "support/llama_tokenizer.h"
#include "sspan/error.h"

namespace sspan {
namespace {

using test::llama_tokenizer;

std::vector<std::string> pieces_of(const Tokenizer& tok, const std::vector<int>& ids) {
  std::vector<std::string> out;
  for (int id : ids) out.push_back(tok.piece(id));
  return out;
}

std::string bytes_of(const Tokenizer& tok, const std::vector<int>& ids) {
  std::string out;
  for (int id : ids) out += tok.token_bytes(id);
  return out;
}

TEST(Tokenizer, VocabularyAndSpecialIds) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->is_control(1));
  EXPECT_TRUE(tok->is_control(2));
  EXPECT_FALSE(tok->is_control(15043));
  EXPECT_FALSE(tok->is_control(-1));
  EXPECT_FALSE(tok->is_control(32000));
}

TEST(Tokenizer, HelloWorldMatchesHuggingFace) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<int>{1, 15043, 3186}));
  EXPECT_EQ(tok->encode("Hello world", false), (std::vector<int>{15043, 3186}));
  EXPECT_EQ(tok->decode({1, 15043, 3186}), "Hello world");
}

TEST(Tokenizer, ReadmeFacts) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  const auto task = tok->encode("(42 * 56) + (5 * 32) [0]", false);
  EXPECT_EQ(pieces_of(*tok, task),
            (std::vector<std::string>{"▁(", "4", "2", "▁*", "▁", "5", "6", ")", "▁+", "▁(", "5",
                                      "▁*", "▁", "3", "2", ")", "▁[", "0", "]"}));
  const auto ref = tok->encode("[-1] 42 * 56=2352", false);
  ASSERT_FALSE(ref.empty());
  EXPECT_EQ(ref[0], 21069);
  EXPECT_EQ(tok->piece(21069), "▁[-");
  const auto digits = tok->encode_continuation("2352");
  EXPECT_EQ(pieces_of(*tok, digits), (std::vector<std::string>{"2", "3", "5", "2"}));
}

TEST(Tokenizer, RoundTrips) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  const std::vector<std::string> texts = {
      "Hello world",
      "The quick brown fox jumps over the lazy dog.",
      "Café, naïve, résumé, Ångström",
      "日本語のテキストと中文",
      "emoji 🦙 and 👩‍👩‍👧 family",
      "line one\nline two\n\nline four",
      "trailing spaces   ",
      "  two leading spaces",
      "tabs\tand\tmore",
      "(42 * 56) + (5 * 32) [0]\n[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352",
  };
  for (const auto& text : texts) {
    const auto ids = tok->encode(text, true);
    EXPECT_EQ(ids.front(), 1) << text;
    EXPECT_EQ(tok->decode(ids), text);
    // token_bytes concatenated is the text with the dummy-prefix space in front.
    EXPECT_EQ(bytes_of(*tok, ids), " " + text);
  }
}

TEST(Tokenizer, ByteFallbackForLlamaEmoji) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  const auto ids = tok->encode_continuation("🦙");
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(pieces_of(*tok, ids), (std::vector<std::string>{"<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"}));
  EXPECT_EQ(tok->token_bytes(ids[0]), "\xF0");
  EXPECT_EQ(tok->token_bytes(ids[3]), "\x99");
  EXPECT_EQ(bytes_of(*tok, ids), "🦙");
}

TEST(Tokenizer, TokenBytes) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  EXPECT_EQ(tok->token_bytes(3186), " world");
  EXPECT_EQ(tok->token_bytes(13), "\n");
  EXPECT_EQ(tok->token_bytes(29871), " ");
  EXPECT_EQ(tok->token_bytes(1), "");
  EXPECT_EQ(tok->token_bytes(2), "");
  EXPECT_EQ(tok->token_bytes(0), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->piece(3186), "▁world");
  EXPECT_THROW(tok->token_bytes(32000), Error);
  EXPECT_THROW(tok->token_bytes(-1), Error);
  EXPECT_THROW(tok->piece(40000), Error);
  EXPECT_THROW(tok->decode({1, 99999}), Error);
}

// A continuation is tokenized as it would be in the middle of a longer text: the
// concatenated token bytes are the text itself, with no dummy-prefix space.
TEST(Tokenizer, ContinuationAddsNoDummyPrefix) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  EXPECT_EQ(pieces_of(*tok, tok->encode_continuation("hello")), (std::vector<std::string>{"hello"}));
  EXPECT_EQ(pieces_of(*tok, tok->encode_continuation(" hello")),
            (std::vector<std::string>{"▁hello"}));
  EXPECT_EQ(pieces_of(*tok, tok->encode_continuation("\nhello")),
            (std::vector<std::string>{"<0x0A>", "hello"}));
  EXPECT_EQ(pieces_of(*tok, tok->encode_continuation("[-1] 4")),
            (std::vector<std::string>{"[-", "1", "]", "▁", "4"}));
  EXPECT_TRUE(tok->encode_continuation("").empty());
  for (const std::string text : {"hello", " hello", "\nhello", "\n\n x", "  two", "é🦙", "]\n[0,1] 5"})
    EXPECT_EQ(bytes_of(*tok, tok->encode_continuation(text)), text) << text;
}

// Encoding a prompt and then its continuation gives the same ids as encoding the whole
// text when the split falls at a newline (the newline is a byte piece that never merges).
TEST(Tokenizer, ContinuationAfterNewlineMatchesWholeEncode) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  const std::string prompt = "(42 * 56) + (5 * 32) [0]\n";
  const std::string rest = "[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n";
  auto split = tok->encode(prompt, true);
  const auto cont = tok->encode_continuation(rest);
  split.insert(split.end(), cont.begin(), cont.end());
  EXPECT_EQ(split, tok->encode(prompt + rest, true));
}

TEST(Tokenizer, MissingOrCorruptFileIsAClearError) {
  const auto dir = test::scratch_dir("tok");
  try {
    Tokenizer::load(dir / "absent.model");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.model"), std::string::npos) << e.what();
  }
  const auto corrupt = dir / "corrupt.model";
  std::ofstream(corrupt) << "this is not a sentencepiece model";
  try {
    Tokenizer::load(corrupt);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt.model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sspan
