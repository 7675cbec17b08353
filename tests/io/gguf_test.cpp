// GGUF: a LLaMA written as GGUF (q/k rows permuted as llama.cpp's converter does, F32 and
// Q8_0) gives exactly the logits of the same weights as safetensors; Q4_0/Q4_1/Q8_0
// blocks dequantize as ggml defines them; unsupported types are refused by name; hostile
// headers (truncation, huge counts and lengths, bad offsets and alignment, overlaps,
// duplicates) are clear errors; the GGUF SentencePiece vocabulary encodes as SentencePiece.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <cmath>
#include <fstream>
#include <numeric>

#include "io/dequantize.h"
#include "io/gguf.h"
#include "model/llama.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "sspan/error.h"
#include "sspan/tokenizer.h"
#include "support/gguf_builder.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using test::GgufBuilder;

constexpr uint32_t kF32 = 0, kQ8_0 = 8, kQ4_K = 12;

std::span<const std::byte> bytes_of(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

std::string f32_bytes(const std::vector<float>& v) { return {reinterpret_cast<const char*>(v.data()), v.size() * 4}; }

// Q8_0 of `v` (a multiple of 32 values), and the values it dequantizes to.
std::string quantize_q8_0(const std::vector<float>& v, std::vector<float>* dequantized) {
  std::string out;
  for (size_t b = 0; b < v.size(); b += 32) {
    float amax = 0.f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::abs(v[b + j]));
    const uint16_t dh = float_to_half(amax / 127.f);
    const float d = half_to_float(dh);
    out += GgufBuilder::pod(dh);
    for (size_t j = 0; j < 32; ++j) {
      const int q = d == 0.f ? 0 : int(std::lround(v[b + j] / d));
      out.push_back(char(int8_t(std::clamp(q, -127, 127))));
      (*dequantized)[b + j] = d * float(int8_t(std::clamp(q, -127, 127)));
    }
  }
  return out;
}

// HF rows -> GGUF rows: within each head, row t * D/2 + i goes to 2i + t.
std::vector<float> permute_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int heads) {
  std::vector<float> out(w.size());
  const int64_t D = rows / heads;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t t = 0; t < 2; ++t)
      for (int64_t i = 0; i < D / 2; ++i)
        std::copy_n(&w[size_t((h * D + t * (D / 2) + i) * cols)], cols, &out[size_t((h * D + 2 * i + t) * cols)]);
  return out;
}

std::string gguf_name(const std::string& hf) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"input_layernorm", "attn_norm"}, {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},   {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
      {"mlp.gate_proj", "ffn_gate"},    {"mlp.up_proj", "ffn_up"},          {"mlp.down_proj", "ffn_down"}};
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const size_t a = std::string("model.layers.").size(), dot = hf.find('.', a);
  const std::string layer = hf.substr(a, dot - a), role = hf.substr(dot + 1, hf.size() - dot - 1 - 7);
  for (const auto& [from, to] : kMap)
    if (role == from) return "blk." + layer + "." + to + ".weight";
  ADD_FAILURE() << hf;
  return {};
}

TinyLlamaSpec gqa_spec() {
  TinyLlamaSpec s;
  s.vocab_size = 64;
  s.hidden_size = 64;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.intermediate_size = 96;
  s.num_layers = 2;
  return s;
}

GgufBuilder llama_metadata(const TinyLlamaSpec& s) {
  GgufBuilder b;
  b.str("general.architecture", "llama")
      .u32("llama.block_count", uint32_t(s.num_layers))
      .u32("llama.context_length", uint32_t(s.max_position_embeddings))
      .u32("llama.embedding_length", uint32_t(s.hidden_size))
      .u32("llama.feed_forward_length", uint32_t(s.intermediate_size))
      .u32("llama.attention.head_count", uint32_t(s.num_heads))
      .u32("llama.attention.head_count_kv", uint32_t(s.num_kv_heads))
      .f32("llama.rope.freq_base", float(s.rope_theta))
      .f32("llama.attention.layer_norm_rms_epsilon", float(s.rms_norm_eps))
      .u32("tokenizer.ggml.bos_token_id", 1)
      .u32("tokenizer.ggml.eos_token_id", 2);
  return b;
}

// The GGUF of spec's random weights (big matrices in `type`), and the HF tensors it
// dequantizes to (what a safetensors twin must hold to give the same logits).
std::string tiny_gguf(const TinyLlamaSpec& s, uint32_t type, std::vector<TensorSpec>* hf) {
  *hf = tiny_llama_tensors(s);
  GgufBuilder b = llama_metadata(s);
  for (auto& t : *hf) {
    const std::vector<uint64_t> ne(t.shape.rbegin(), t.shape.rend());
    std::vector<float> v = t.values;
    const bool q = t.name.find("q_proj") != std::string::npos, k = t.name.find("k_proj") != std::string::npos;
    if (q || k) v = permute_rows(v, t.shape[0], t.shape[1], q ? s.num_heads : s.num_kv_heads);
    if (t.shape.size() == 2 && type == kQ8_0) {
      std::vector<float> deq(v.size());
      b.tensor(gguf_name(t.name), ne, kQ8_0, quantize_q8_0(v, &deq));
      // The HF twin holds the dequantized values in HF row order.
      if (q || k) {
        // un-permute: apply the inverse mapping by permuting the original's dequantized rows back
        std::vector<float> back(deq.size());
        const int heads = q ? s.num_heads : s.num_kv_heads;
        const int64_t rows = t.shape[0], cols = t.shape[1], D = rows / heads;
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t tt = 0; tt < 2; ++tt)
            for (int64_t i = 0; i < D / 2; ++i)
              std::copy_n(&deq[size_t((h * D + 2 * i + tt) * cols)], cols, &back[size_t((h * D + tt * (D / 2) + i) * cols)]);
        deq = back;
      }
      t.values = deq;
    } else {
      b.tensor(gguf_name(t.name), ne, kF32, f32_bytes(v));
    }
    t.dtype = DType::F32;
  }
  return b.bytes();
}

std::vector<float> logits_of(const ModelConfig& c, const Checkpoint& ck, const std::vector<int32_t>& ids) {
  auto be = make_cpu_backend(1);
  LlamaModel m(c, ck, *be);
  m.allocate(16, 16, 1, 32);
  const size_t n = ids.size();
  std::vector<int32_t> pos(n), slot(n, 0), rows(n);
  std::iota(pos.begin(), pos.end(), 0);
  std::iota(rows.begin(), rows.end(), 0);
  const std::vector<RowMode> dense(n, RowMode::Dense);
  m.forward({ids, pos, slot, dense, nullptr, rows});
  std::vector<float> out(n * size_t(c.vocab_size));
  m.read_logits(out, int(n));
  return out;
}

void expect_same_logits_as_safetensors(uint32_t type) {
  const TinyLlamaSpec spec = gqa_spec();
  std::vector<TensorSpec> hf;
  const fs::path dir = test::scratch_dir("gguf");
  const fs::path gguf = dir / "tiny.gguf";
  std::ofstream(gguf, std::ios::binary) << tiny_gguf(spec, type, &hf);
  write_safetensors(dir / "model.safetensors", hf);
  std::ofstream(dir / "config.json") << tiny_llama_config_json(spec);

  const ModelConfig gc = ModelConfig::from_gguf(gguf), sc = ModelConfig::from_file(dir / "config.json");
  EXPECT_EQ(gc.num_key_value_heads, 2);
  EXPECT_EQ(gc.head_dim, sc.head_dim);
  EXPECT_EQ(gc.tie_word_embeddings, sc.tie_word_embeddings);
  const std::vector<int32_t> ids = {1, 5, 9, 33, 60, 2, 17};
  const auto a = logits_of(gc, Checkpoint::open_gguf(gguf, DType::F32), ids);
  const auto b = logits_of(sc, Checkpoint::open(dir / "model.safetensors"), ids);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5f * std::max(1.f, std::abs(b[i]))) << i;
}

TEST(Gguf, F32LlamaGivesTheLogitsOfItsSafetensorsTwin) { expect_same_logits_as_safetensors(kF32); }
TEST(Gguf, Q8_0LlamaGivesTheLogitsOfItsDequantizedTwin) { expect_same_logits_as_safetensors(kQ8_0); }

TEST(Gguf, BlocksDequantizeAsGgmlDefinesThem) {
  // One block each: d = 0.5 (fp16 0x3800), m = -1 (0xBC00), nibbles 0..15 then 15..0.
  std::string nibbles;
  for (int j = 0; j < 16; ++j) nibbles.push_back(char(j | ((15 - j) << 4)));
  const std::string q4_0 = GgufBuilder::pod(uint16_t(0x3800)) + nibbles;
  const std::string q4_1 = GgufBuilder::pod(uint16_t(0x3800)) + GgufBuilder::pod(uint16_t(0xBC00)) + nibbles;
  std::string q8_0 = GgufBuilder::pod(uint16_t(0x3800));
  for (int j = 0; j < 32; ++j) q8_0.push_back(char(int8_t(j - 16)));
  std::vector<float> out(32);
  dequantize_row(GgmlType::Q4_0, bytes_of(q4_0).data(), out.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[size_t(j)], 0.5f * float(j - 8));
    EXPECT_EQ(out[size_t(j + 16)], 0.5f * float(15 - j - 8));
  }
  dequantize_row(GgmlType::Q4_1, bytes_of(q4_1).data(), out.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[size_t(j)], 0.5f * float(j) - 1.f);
    EXPECT_EQ(out[size_t(j + 16)], 0.5f * float(15 - j) - 1.f);
  }
  dequantize_row(GgmlType::Q8_0, bytes_of(q8_0).data(), out.data(), 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[size_t(j)], 0.5f * float(j - 16));
}

TEST(Gguf, UnsupportedTypeIsRefusedByName) {
  const TinyLlamaSpec spec = gqa_spec();
  std::vector<TensorSpec> hf;
  std::string bytes = tiny_gguf(spec, kF32, &hf);
  GgufBuilder b = llama_metadata(spec);
  b.tensor("token_embd.weight", {256, 64}, kQ4_K, std::string(64 * 144, '\0'));
  const fs::path file = test::scratch_dir("gguf") / "k.gguf";
  std::ofstream(file, std::ios::binary) << b.bytes();
  try {
    Checkpoint::open_gguf(file, DType::F32);
    FAIL() << "a Q4_K tensor loaded";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("Q4_K"));
    EXPECT_THAT(e.what(), HasSubstr("token_embd.weight"));
  }
}

void expect_parse_error(const std::string& bytes, const std::string& phrase) {
  try {
    parse_gguf(bytes_of(bytes), "hostile.gguf");
    ADD_FAILURE() << "parsed; expected an error with '" << phrase << "'";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("hostile.gguf"));
    EXPECT_THAT(e.what(), HasSubstr(phrase));
  }
}

TEST(Gguf, HostileHeadersAreClearErrors) {
  using B = GgufBuilder;
  const std::string one = B().u32("a", 1).tensor("t", {32}, kF32, std::string(128, '\0')).bytes();
  EXPECT_NO_THROW(parse_gguf(bytes_of(one), "ok.gguf"));
  expect_parse_error("GGUX", "magic");
  expect_parse_error(B().bytes(1), "version 1");
  for (size_t cut : {size_t(6), size_t(20), size_t(30), one.size() - 1})  // truncated anywhere
    expect_parse_error(one.substr(0, cut), "");
  // Counts and lengths far beyond the file.
  std::string huge_tensors = one;
  std::memcpy(huge_tensors.data() + 8, "\xff\xff\xff\xff\xff\xff\xff\x0f", 8);
  expect_parse_error(huge_tensors, "tensor count");
  std::string huge_kv = one;
  std::memcpy(huge_kv.data() + 16, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
  expect_parse_error(huge_kv, "metadata count");
  std::string huge_string = one;
  std::memcpy(huge_string.data() + 24, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);  // the key's length
  expect_parse_error(huge_string, "claims");
  expect_parse_error("GGUF" + B::pod(uint32_t(3)) + B::pod(uint64_t(0)) + B::pod(uint64_t(1)) + B::string("arr") +
                         B::pod(uint32_t(9)) + B::pod(uint32_t(6)) + B::pod(uint64_t(1) << 60),
                     "array length");
  expect_parse_error(B().u32("a", 1).u32("a", 2).bytes(), "appears twice");
  expect_parse_error(B().tensor("t", {32}, kF32, "").tensor("t", {32}, kF32, "").bytes(), "appears twice");
  expect_parse_error(B().tensor("t", {32, 1, 1, 1, 1}, kF32, std::string(128, '\0')).bytes(), "5 dimensions");
  expect_parse_error(B().tensor("t", {0}, kF32, "").bytes(), "dimension 0");
  expect_parse_error(B().tensor("t", {1u << 30, 1u << 30}, kF32, "").bytes(), "dimension 1");
  expect_parse_error(B().tensor("t", {33}, kQ8_0, std::string(34, '\0')).bytes(), "not a multiple of 32");
  expect_parse_error(B().tensor("t", {32}, 99, "").bytes(), "unknown ggml type 99");
  expect_parse_error(B().tensor("t", {64}, kF32, std::string(128, '\0')).bytes(), "outside");  // data cut short
  expect_parse_error(B().u32("general.alignment", 3).bytes(), "power of two");
  // An offset that is not aligned, and two tensors over the same bytes.
  std::string misaligned = B().tensor("t", {32}, kF32, std::string(128, '\0')).bytes();
  const size_t off_at = misaligned.find("t") + 1 + 4 + 8 + 4;
  misaligned[off_at] = 4;
  expect_parse_error(misaligned, "alignment");
  std::string overlap = B().tensor("a", {32}, kF32, std::string(128, '\0')).tensor("b", {32}, kF32, std::string(128, '\0')).bytes();
  const size_t b_off = overlap.find(std::string(1, '\x01') + std::string(7, '\0') + "b") + 9 + 4 + 8 + 4;
  std::memset(overlap.data() + b_off, 0, 8);
  expect_parse_error(overlap, "overlap");
}

// The GGUF "llama" vocabulary (pieces, scores, types) of a SentencePiece BPE model encodes
// every string exactly as SentencePiece does.
TEST(Gguf, SentencePieceVocabularyEncodesAsSentencePiece) {
  const fs::path model = test::source_dir() / "models/arith-tiny/tokenizer.model";
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model.string()).ok());
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    pieces.push_back(sp.IdToPiece(i));
    scores.push_back(sp.GetScore(i));
    types.push_back(sp.IsUnknown(i) ? 2 : sp.IsControl(i) ? 3 : sp.IsByte(i) ? 6 : sp.IsUnused(i) ? 5 : 1);
  }
  GgufBuilder b;
  b.str("general.architecture", "llama")
      .str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", pieces)
      .f32s("tokenizer.ggml.scores", scores)
      .i32s("tokenizer.ggml.token_type", types)
      .u32("tokenizer.ggml.bos_token_id", 1)
      .u32("tokenizer.ggml.eos_token_id", 2)
      .u32("tokenizer.ggml.unknown_token_id", 0)
      .boolean("tokenizer.ggml.add_space_prefix", false);  // arith-tiny is trained without the dummy prefix
  const fs::path file = test::scratch_dir("gguf") / "vocab.gguf";
  std::ofstream(file, std::ios::binary) << b.bytes();
  const Tokenizer tok = Tokenizer::load(file);
  EXPECT_EQ(tok.kind(), "GGUF SentencePiece BPE (llama)");
  EXPECT_EQ(tok.vocab_size(), sp.GetPieceSize());
  for (const std::string text : {"(42 * 56) + (5 * 32) [0]\n", "[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n",
                                 "[0,1] 5 * 32=160 [2]\n[0,1,2] 2512", "  12  +  3", "x y z", "\xC3\xA9\xF0\x9F\x98\x80",
                                 ""}) {
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(text, &want).ok());
    EXPECT_EQ(tok.encode(text, false), want) << text;
    std::string decoded;
    ASSERT_TRUE(sp.Decode(want, &decoded).ok());
    EXPECT_EQ(tok.decode(want), decoded) << text;
  }
}

TEST(Tokenizer, AFileOfAnotherKindListsTheSupportedKinds) {
  const fs::path dir = test::scratch_dir("tok");
  for (const auto& [name, content] : std::vector<std::pair<std::string, std::string>>{
           {"weights.safetensors", std::string("\x10\0\0\0\0\0\0\0{}", 10)}, {"notes.txt", "just some text\n"}}) {
    std::ofstream(dir / name, std::ios::binary) << content;
    try {
      Tokenizer::load(dir / name);
      ADD_FAILURE() << name << " loaded as a tokenizer";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(name));
      EXPECT_THAT(e.what(), HasSubstr("tokenizer.json"));
      EXPECT_THAT(e.what(), HasSubstr("GGUF"));
    }
  }
  // A JSON file that is not a tokenizer.json says so, with the supported kinds.
  std::ofstream(dir / "config.json") << "{\"hidden_size\": 4}";
  try {
    Tokenizer::load(dir / "config.json");
    ADD_FAILURE() << "config.json loaded as a tokenizer";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a Hugging Face tokenizer.json"));
    EXPECT_THAT(e.what(), HasSubstr("GGUF"));
  }
}

}  // namespace
}  // namespace sspan
