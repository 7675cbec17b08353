// StreamDecoder: the pieces it emits are valid UTF-8 and concatenate to the whole text.
#include <gtest/gtest.h>

#include "support/llama_tokenizer.h"

namespace sspan {
namespace {

// The project's own SentencePiece tokenizer (byte fallback, like LLaMA's).
const Tokenizer& project_tokenizer() {
  static const Tokenizer tok = Tokenizer::load(test::project_tokenizer_path());
  return tok;
}

// Whether `s` is well-formed UTF-8 (decoded through the standard ranges).
bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
            : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (len == 0 || i + size_t(len) > s.size()) return false;
    for (int k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + size_t(k)]) & 0xC0) != 0x80) return false;
    i += size_t(len);
  }
  return true;
}

TEST(StreamDecoder, ConcatenationEqualsWholeDecode) {
  SSPAN_REQUIRE_LLAMA_TOKENIZER(tok);
  const std::vector<std::string> texts = {
      "Hello world",
      "🦙 llamas 🦙🦙 in a row",
      "日本語のテキスト",
      "mixed é and 中 and 👍🏽 skin tone",
      "new\nlines\n\n",
      "  spaced   out  ",
      "[0,1] 5 * 32=160 [2]\n[0,1,2] 2512",
  };
  for (const auto& text : texts) {
    const auto ids = tok->encode(text, true);
    StreamDecoder stream(*tok);
    std::string streamed;
    for (int id : ids) {
      const std::string piece = stream.push(id);
      EXPECT_TRUE(is_valid_utf8(piece)) << text;
      streamed += piece;
    }
    streamed += stream.finish();
    // The stream keeps the dummy-prefix space that the whole decode drops.
    std::string expected(" ");
    expected += tok->decode(ids);
    EXPECT_EQ(streamed, expected) << text;
  }
}

TEST(StreamDecoder, HoldsSplitCharacterUntilComplete) {
  const Tokenizer* tok = &project_tokenizer();
  const auto ids = tok->encode_continuation("🦙");
  ASSERT_EQ(ids.size(), 4u);
  StreamDecoder stream(*tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "");
  EXPECT_EQ(stream.push(ids[3]), "🦙");
  EXPECT_EQ(stream.finish(), "");
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  const Tokenizer* tok = &project_tokenizer();
  const auto llama = tok->encode_continuation("🦙");
  const auto a = tok->encode_continuation("a");
  ASSERT_EQ(a.size(), 1u);
  StreamDecoder stream(*tok);
  // A lead byte followed by a plain letter: the broken sequence is replaced, the letter kept.
  EXPECT_EQ(stream.push(llama[0]), "");
  EXPECT_EQ(stream.push(a[0]), "\xEF\xBF\xBD" "a");
  // A stray continuation byte is replaced at once.
  EXPECT_EQ(stream.push(llama[3]), "\xEF\xBF\xBD");
  // An incomplete character at the end is flushed as one replacement.
  EXPECT_EQ(stream.push(llama[0]), "");
  EXPECT_EQ(stream.push(llama[1]), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");
}

TEST(StreamDecoder, ControlTokensEmitNothing) {
  const Tokenizer* tok = &project_tokenizer();
  StreamDecoder stream(*tok);
  const auto five = tok->encode_continuation(" 5");
  EXPECT_EQ(stream.push(tok->bos_id()), "");
  std::string text;
  for (int id : five) text += stream.push(id);
  EXPECT_EQ(text, " 5");
  EXPECT_EQ(stream.push(tok->eos_id()), "");
  EXPECT_EQ(stream.finish(), "");
}

}  // namespace
}  // namespace sspan
