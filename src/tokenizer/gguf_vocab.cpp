// The tokenizer a GGUF file carries in its tokenizer.ggml.* metadata: "gpt2" (byte-level
// BPE with a merge list; tokenizer.ggml.pre names the pre-tokenizer) or "llama"
// (SentencePiece BPE: pieces ranked by score, "▁" for spaces, byte fallback).
#include "common/check.h"
#include "io/gguf.h"
#include "tokenizer/bpe_model.h"

namespace sspan {

BpeSpec read_gguf_vocab(const GgufFile& f) {
  const std::string src = f.path().string();
  BpeSpec s;
  s.source = src;
  const std::string model = f.text("tokenizer.ggml.model", "");
  SSPAN_CHECK(model == "gpt2" || model == "llama",
              "{}: tokenizer.ggml.model '{}' is not supported (gpt2: byte-level BPE, llama: SentencePiece BPE)", src,
              model);
  s.tokens = f.strings("tokenizer.ggml.tokens");
  const size_t V = s.tokens.size();
  SSPAN_CHECK(V > 0, "{}: tokenizer.ggml.tokens is empty", src);
  s.types.assign(V, BpeSpec::TokenType::Normal);
  if (const auto* types = f.numbers("tokenizer.ggml.token_type")) {
    SSPAN_CHECK(types->size() == V, "{}: {} token types for {} tokens", src, types->size(), V);
    for (size_t i = 0; i < V; ++i) {
      const int t = int((*types)[i]);
      SSPAN_CHECK(t >= 0 && t <= 6 && double(t) == (*types)[i], "{}: token {} has unknown type {}", src, i, (*types)[i]);
      // llama.cpp's types: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte.
      using T = BpeSpec::TokenType;
      const T kinds[] = {T::Normal, T::Normal, T::Unknown, T::Special, T::UserDefined, T::Special, T::Byte};
      s.types[i] = kinds[t];
      const bool text_match = t == 4 || (t == 3 && model == "gpt2");
      if (text_match && !s.tokens[i].empty()) s.added.push_back({s.tokens[i], int(i), t == 3, false, false});
    }
  }
  auto id = [&](const char* key) {
    const int64_t v = f.integer(key, -1);
    SSPAN_CHECK(v >= -1 && v < int64_t(V), "{}: {} = {} is outside the vocabulary of {}", src, key, v, V);
    return int(v);
  };
  s.bos_id = id("tokenizer.ggml.bos_token_id");
  s.eos_id = id("tokenizer.ggml.eos_token_id");
  s.unk_id = id("tokenizer.ggml.unknown_token_id");
  if (model == "gpt2") {
    s.kind = "GGUF byte-level BPE (gpt2)";
    s.alphabet = BpeSpec::Alphabet::ByteLevel;
    s.ranking = BpeSpec::Ranking::MergeList;
    for (const auto& m : f.strings("tokenizer.ggml.merges")) {
      const size_t sp = m.find(' ');
      SSPAN_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < m.size() && m.find(' ', sp + 1) == std::string::npos,
                  "{}: merge '{}' is not two tokens separated by one space", src, m);
      s.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    const std::string pre = f.text("tokenizer.ggml.pre", "default");
    if (pre == "default" || pre == "gpt2" || pre == "gpt-2") {
      s.splits = {SplitPattern::Gpt2};
    } else if (pre == "llama-bpe" || pre == "llama3") {
      s.splits = {SplitPattern::Llama3};
      s.ignore_merges = true;
    } else if (pre == "qwen2") {
      s.splits = {SplitPattern::Qwen2};
    } else if (pre == "smollm") {
      s.splits = {SplitPattern::Digits, SplitPattern::Gpt2};
    } else {
      SSPAN_FAIL("{}: tokenizer.ggml.pre '{}' is not supported (default, gpt2, llama-bpe, qwen2, smollm)", src, pre);
    }
    s.add_bos = f.boolean("tokenizer.ggml.add_bos_token", false);
  } else {
    s.kind = "GGUF SentencePiece BPE (llama)";
    s.alphabet = BpeSpec::Alphabet::Metaspace;
    s.ranking = BpeSpec::Ranking::TokenScore;
    const auto* scores = f.numbers("tokenizer.ggml.scores");
    SSPAN_CHECK(scores && scores->size() == V, "{}: tokenizer.ggml.scores must hold one score per token", src);
    s.scores.assign(scores->begin(), scores->end());
    s.byte_fallback = true;
    s.prepend = f.boolean("tokenizer.ggml.add_space_prefix", true) ? BpeSpec::Prepend::First : BpeSpec::Prepend::Never;
    s.add_bos = f.boolean("tokenizer.ggml.add_bos_token", true);
  }
  return s;
}

}  // namespace sspan
