// The engine end to end on a random checkpoint with the project's own tokenizer: batching,
// sampling determinism, context limits, agreement with an independent fp64 forward, and
// the span rule in the forward pass (dense scoring is plain scoring bit for bit; sparse
// positions equal a dense forward with the equivalent explicit mask).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "model/llama.h"
#include "runtime/sampler.h"
#include "checkpoint_writer/checkpoint_writer.h"
#include "sspan/engine.h"
#include "sspan/error.h"
#include "support/reference_llama.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

// Figure 5 of the paper: prompt line with anchor [0], then the model's solution.
constexpr const char* kFig5Prompt = "(42 * 56) + (5 * 32) [0]\n";
constexpr const char* kFig5Completion =
    "[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n[-1] So 42 * 56=2352 [1]\n[0,1] 5 * 32=160 [2]\n[0,1,2] 2512\n";

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = test::project_tokenizer_path();
    TinyLlamaSpec spec;
    spec.vocab_size = 300;  // the project's tokenizer (no LLaMA vocabulary needed)
    spec.hidden_size = 64;
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    spec.intermediate_size = 128;
    spec.init_scale = 0.15f;  // peaked logits: clear greedy margins
    dir_ = write_tiny_llama(test::scratch_dir("model"), spec);
  }
  EngineOptions options(int batch = 1, int ctx = 256) const {
    EngineOptions o;
    o.model_dir = dir_;
    o.tokenizer_file = tokenizer_;
    o.max_batch = batch;
    o.max_context = ctx;
    o.threads = 2;
    return o;
  }
  std::filesystem::path tokenizer_, dir_;
};

TEST_F(EngineTest, BatchOfPromptsGivesTheTokensOfSingleRuns) {
  const std::vector<std::string> prompts = {"Hello world", kFig5Prompt, "The quick brown fox jumps over"};
  for (const char* policy : {"dense", "arith"}) {
    GenerateOptions g;
    g.max_new_tokens = 24;
    g.stop_at_eos = false;
    g.span.policy = policy;
    Engine batch(options(3));
    const auto together = batch.generate(prompts, g);
    Engine single(options(1));
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto alone = single.generate({prompts[i]}, g);
      EXPECT_EQ(alone[0].ids, together[i].ids) << policy << " prompt " << i;
      EXPECT_EQ(alone[0].text, together[i].text) << policy << " prompt " << i;
    }
  }
}

TEST_F(EngineTest, SamplingIsDeterministicForASeed) {
  Engine e(options());
  GenerateOptions g;
  g.max_new_tokens = 30;
  g.stop_at_eos = false;
  g.sampling = {.temperature = 1.2f, .top_k = 50, .top_p = 0.9f, .seed = 42};
  const auto a = e.generate({"Once upon a time"}, g), b = e.generate({"Once upon a time"}, g);
  EXPECT_EQ(a[0].ids, b[0].ids);
  g.sampling.seed = 43;
  const auto c = e.generate({"Once upon a time"}, g);
  EXPECT_NE(a[0].ids, c[0].ids);
}

TEST_F(EngineTest, StreamedTextEqualsTheResultAndTracesCoverEveryPosition) {
  Engine e(options());
  GenerateOptions g;
  g.max_new_tokens = 20;
  g.stop_at_eos = false;
  g.span.policy = "arith";
  std::string streamed;
  std::vector<TraceRecord> trace;
  GenerateCallbacks cb{[&](int, std::string_view t) { streamed += t; },
                       [&](const TraceRecord& r) { trace.push_back(r); }};
  const auto r = e.generate({kFig5Prompt}, g, cb);
  EXPECT_EQ(streamed, r[0].text);
  // Every processed position once, in order: the prompt and every generated token but the last.
  ASSERT_EQ(trace.size(), r[0].prompt_ids.size() + r[0].ids.size() - 1);
  for (size_t p = 0; p < trace.size(); ++p) {
    EXPECT_EQ(trace[p].pos, int32_t(p));
    EXPECT_EQ(trace[p].attended.back().end, int32_t(p) + 1) << "t is always attended";
  }
}

TEST_F(EngineTest, PromptLongerThanTheContextIsAnErrorWithBothNumbers) {
  Engine e(options(1, 16));
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "word ";
  const int n = int(e.tokenizer().encode(prompt, true).size());
  try {
    e.generate({prompt}, {});
    FAIL() << "expected an error";
  } catch (const Error& err) {
    EXPECT_THAT(err.what(), ::testing::HasSubstr(std::to_string(n) + " tokens"));
    EXPECT_THAT(err.what(), ::testing::HasSubstr("16"));
  }
}

TEST_F(EngineTest, GreedyTokensAgreeWithAnIndependentFp64Forward) {
  Engine e(options());
  GenerateOptions g;
  g.max_new_tokens = 16;
  g.stop_at_eos = false;
  const auto r = e.generate({"Hello world, this is"}, g)[0];
  // Replay prompt + generated tokens through the fp64 reference; at each step where its
  // top-2 margin is clear, its argmax is the engine's token.
  std::vector<int32_t> ids(r.prompt_ids.begin(), r.prompt_ids.end());
  ids.insert(ids.end(), r.ids.begin(), r.ids.end() - 1);
  const ModelConfig cfg = ModelConfig::from_file(dir_ / "config.json");
  const auto ref = test::reference_logits(cfg, Checkpoint::open(dir_), ids);
  int checked = 0;
  for (size_t k = 0; k < r.ids.size(); ++k) {
    const auto& row = ref[r.prompt_ids.size() - 1 + k];
    std::vector<double> sorted = row;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    if (sorted[0] - sorted[1] < 1e-3) break;  // a near-tie: later tokens may legitimately differ
    EXPECT_EQ(int32_t(std::max_element(row.begin(), row.end()) - row.begin()), r.ids[k]) << "step " << k;
    ++checked;
  }
  EXPECT_GT(checked, 8);
}

// Logits of the whole text through LlamaModel, spans from a SpanState fed token by token.
struct SpanRun {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits;     // [T][V]
  std::vector<std::vector<bool>> mask;        // [T][T], from the span state
  std::vector<bool> sparse;                   // [T]
};

SpanRun run_with_spans(const std::filesystem::path& dir, const Tokenizer& tok, const char* policy) {
  SpanRun run;
  run.ids = tok.encode(kFig5Prompt, true);
  const size_t P = run.ids.size();
  const auto comp = tok.encode_continuation(kFig5Completion);
  run.ids.insert(run.ids.end(), comp.begin(), comp.end());
  const size_t T = run.ids.size();

  const ModelConfig cfg = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  auto be = make_cpu_backend(2);
  LlamaModel m(cfg, ckpt, *be);
  m.allocate(int(T), int(T), 1, int(T) + 1);
  std::shared_ptr<const SpanGrammar> g;
  if (std::string(policy) != "dense") g = std::make_shared<SpanGrammar>(SpanGrammar::builtin(policy));
  SpanState state(g, 32);
  SpanBatch batch;
  batch.reset(32);
  std::vector<int32_t> pos(T), slot(T, 0), rows(T);
  std::iota(pos.begin(), pos.end(), 0);
  std::iota(rows.begin(), rows.end(), 0);
  for (size_t t = 0; t < T; ++t) {
    state.push(t == 0 ? std::string() : tok.token_bytes(run.ids[t]), t < P);
    state.append_last(batch);
    std::vector<bool> row(T, false);
    for (const auto& r : state.last_attended())
      for (int j = r.begin; j < r.end; ++j) row[size_t(j)] = true;
    run.mask.push_back(row);
    run.sparse.push_back(state.last_sparse());
  }
  std::vector<RowMode> mode;
  for (bool sparse : run.sparse) mode.push_back(sparse ? RowMode::Sparse : RowMode::Dense);
  m.forward({run.ids, pos, slot, mode, &batch, rows});
  std::vector<float> flat(T * size_t(cfg.vocab_size));
  m.read_logits(flat, int(T));
  for (size_t t = 0; t < T; ++t)
    run.logits.emplace_back(flat.begin() + long(t * size_t(cfg.vocab_size)),
                            flat.begin() + long((t + 1) * size_t(cfg.vocab_size)));
  return run;
}

TEST_F(EngineTest, SparsePositionsEqualADenseForwardWithTheExplicitMask) {
  Engine e(options());
  const SpanRun run = run_with_spans(dir_, e.tokenizer(), "arith");
  const int n_sparse = int(std::count(run.sparse.begin(), run.sparse.end(), true));
  ASSERT_GT(n_sparse, 30) << "Figure 5 has sparse lines";
  const ModelConfig cfg = ModelConfig::from_file(dir_ / "config.json");
  const auto ref = test::reference_logits(cfg, Checkpoint::open(dir_), run.ids, run.mask);
  for (size_t t = 0; t < run.ids.size(); ++t) {
    double scale = 1e-30;
    for (double v : ref[t]) scale = std::max(scale, std::abs(v));
    for (size_t v = 0; v < ref[t].size(); ++v)
      ASSERT_NEAR(run.logits[t][v], ref[t][v], 1e-5 * scale) << "position " << t << (run.sparse[t] ? " sparse" : " dense");
  }
  // The mask matters: the same text under dense attention gives other logits at sparse positions.
  const auto dense_ref = test::reference_logits(cfg, Checkpoint::open(dir_), run.ids);
  // The last line ([0,1,2] 2512) leaves out line 2, so its positions attend less than 0..t.
  const size_t t = size_t(std::find(run.sparse.rbegin(), run.sparse.rend(), true) - run.sparse.rbegin());
  const size_t last_sparse = run.sparse.size() - 1 - t;
  ASSERT_LT(std::count(run.mask[last_sparse].begin(), run.mask[last_sparse].end(), true), long(last_sparse) + 1);
  EXPECT_GT(std::abs(dense_ref[last_sparse][0] - ref[last_sparse][0]) +
                std::abs(dense_ref[last_sparse][1] - ref[last_sparse][1]),
            1e-6);
}

TEST_F(EngineTest, ScoringUnderDenseIsPlainScoringBitForBit) {
  Engine e(options());
  const auto scored = e.score(kFig5Prompt, kFig5Completion, {"dense", 64});
  const SpanRun plain = run_with_spans(dir_, e.tokenizer(), "dense");
  const size_t P = scored.prompt_ids.size();
  ASSERT_EQ(scored.tokens.size(), plain.ids.size() - P);
  for (size_t k = 0; k < scored.tokens.size(); ++k) {
    const auto& row = plain.logits[P - 1 + k];
    const float mx = *std::max_element(row.begin(), row.end());
    double sum = 0.0;
    for (float v : row) sum += std::exp(double(v) - mx);
    const double lp = double(row[size_t(plain.ids[P + k])]) - mx - std::log(sum);
    EXPECT_EQ(scored.tokens[k].logprob, lp) << "token " << k;
  }
  // And scoring under arith moves the log-probabilities of sparse positions.
  const auto sparse = e.score(kFig5Prompt, kFig5Completion, {"arith", 64});
  EXPECT_NE(sparse.nll, scored.nll);
  EXPECT_GT(sparse.span.sparse_tokens, 0);
  EXPECT_GT(sparse.span.mean_sparsity, 0.1);
}

// --kv-dtype auto: f32 for this fp32 checkpoint, f16 for a half-precision one (half the
// bytes); an explicit type is used as given; anything else is an error naming the option.
TEST_F(EngineTest, KvDtypeFollowsTheCheckpointUnlessGiven) {
  auto o = options();
  const Engine f32(o);
  EXPECT_NE(f32.load_stats().backend.find("F32 KV cache"), std::string::npos) << f32.load_stats().backend;
  o.kv_dtype = "bf16";
  const Engine bf16(o);
  EXPECT_NE(bf16.load_stats().backend.find("BF16 KV cache"), std::string::npos) << bf16.load_stats().backend;
  EXPECT_EQ(bf16.load_stats().kv_cache_bytes * 2, f32.load_stats().kv_cache_bytes);
  // The element size, whatever context the cache rounds up to (here 250 to whole blocks).
  auto odd = options(1, 250);
  EXPECT_EQ(Engine(odd).kv_element_bytes(), 4.0);
  odd.kv_dtype = "bf16";
  EXPECT_EQ(Engine(odd).kv_element_bytes(), 2.0);

  TinyLlamaSpec half;
  half.vocab_size = 300;  // the project's tokenizer
  half.dtype = DType::F16;
  auto h = options();
  h.model_dir = write_tiny_llama(test::scratch_dir("model_f16"), half);
  const Engine auto_half(h);
  EXPECT_NE(auto_half.load_stats().backend.find("F16 KV cache"), std::string::npos) << auto_half.load_stats().backend;

  o.kv_dtype = "f8";
  try {
    Engine bad(o);
    FAIL() << "--kv-dtype f8 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-dtype"), std::string::npos) << e.what();
  }
}

TEST_F(EngineTest, BadOptionsAreErrors) {
  Engine e(options());
  GenerateOptions g;
  g.span.policy = "no-such-grammar";
  EXPECT_THROW(e.generate({"x"}, g), Error);
  g.span.policy = "dense";
  g.span.block_size = 48;
  EXPECT_THROW(e.generate({"x"}, g), Error);
  g.span.block_size = 64;
  g.sampling.top_p = 0.f;
  g.sampling.temperature = 1.f;
  EXPECT_THROW(e.generate({"x"}, g), Error);
  g.sampling = {};
  g.max_new_tokens = 3;
  EXPECT_EQ(e.generate({"a", "b"}, g).size(), 2u);  // more prompts than slots wait for one
  auto o = options();
  o.device = "tpu";
  EXPECT_THROW(Engine{o}, Error);
}

}  // namespace
}  // namespace sspan
