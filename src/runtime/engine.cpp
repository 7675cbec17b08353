// The engine: loading, prefill, the decode loop and teacher-forced scoring, with the span
// policy applied to every processed token (prompt and generated alike).
#include "sspan/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/check.h"
#include "model/llama.h"
#include "runtime/sampler.h"
#include "sspan/checkpoint.h"

namespace sspan {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::shared_ptr<const SpanGrammar> resolve_policy(const std::string& policy) {
  if (policy == "dense") return nullptr;
  if (policy == "arith" || policy == "summary") return std::make_shared<SpanGrammar>(SpanGrammar::builtin(policy));
  std::error_code ec;
  SSPAN_CHECK(std::filesystem::is_regular_file(policy, ec),
              "span policy '{}' is neither dense, arith, summary nor a grammar .json file", policy);
  return std::make_shared<SpanGrammar>(SpanGrammar::from_file(policy));
}

// Reusable host buffers for one forward step (capacity reserved once).
struct StepBuffers {
  std::vector<int32_t> tokens, pos, slot, logit_rows;
  SpanBatch span;
  void reset(int block_size) {
    tokens.clear();
    pos.clear();
    slot.clear();
    logit_rows.clear();
    span.reset(block_size);
  }
  void reserve(size_t rows) {
    tokens.reserve(rows);
    pos.reserve(rows);
    slot.reserve(rows);
    logit_rows.reserve(rows);
  }
  StepBatch view() const { return {tokens, pos, slot, &span, logit_rows}; }
};

// Accumulates span statistics over generated (or completion) positions.
struct SpanTally {
  int64_t sparse = 0, dense = 0;
  double sparsity_sum = 0.0;
  void add(bool is_sparse, int64_t n_attended, int32_t pos) {
    (is_sparse ? sparse : dense) += 1;
    sparsity_sum += 1.0 - double(n_attended) / double(pos + 1);
  }
  SpanStats stats(const SpanEvents& events) const {
    SpanStats s;
    s.sparse_tokens = sparse;
    s.dense_tokens = dense;
    const int64_t n = sparse + dense;
    s.mean_sparsity = n ? sparsity_sum / double(n) : 0.0;
    s.events = events;
    return s;
  }
};

}  // namespace

std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Eos: return "eos";
    case StopReason::Length: return "length";
    case StopReason::Context: return "context";
  }
  return "?";
}

struct Engine::Impl {
  EngineOptions opt;
  ModelConfig config;
  Checkpoint ckpt;
  Tokenizer tok;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  LoadStats load;
  int max_ctx = 0;
  std::vector<float> logits;  // [M, V] host copy of the step's logits
  StepBuffers step;
  std::vector<int32_t> picked;  // [rows] tokens chosen in the last step
  std::vector<float> uniforms;  // [rows] one draw per row when sampling

  explicit Impl(const EngineOptions& o)
      : opt(o),
        config(ModelConfig::from_file(o.model_dir / "config.json")),
        ckpt(Checkpoint::open(o.model_dir)),
        tok(load_tokenizer(o)) {
    SSPAN_CHECK(o.max_batch >= 1, "max batch must be >= 1, got {}", o.max_batch);
    SSPAN_CHECK(o.max_step_rows >= 1, "max step rows must be >= 1, got {}", o.max_step_rows);
    SSPAN_CHECK(tok.vocab_size() <= config.vocab_size,
                "tokenizer has {} pieces but config.json vocab_size is {}: they do not belong together",
                tok.vocab_size(), config.vocab_size);
    max_ctx = o.max_context > 0 ? o.max_context : std::min(config.max_position_embeddings, 4096);
    SSPAN_CHECK(max_ctx >= 2, "max context must be >= 2, got {}", max_ctx);
    if (max_ctx > config.max_position_embeddings)
      spdlog::warn("max context {} exceeds the model's max_position_embeddings {}", max_ctx,
                   config.max_position_embeddings);
    backend = make_backend(o);
    const int rows = std::max(o.max_step_rows, o.max_batch);
    check_memory_plan(plan_memory(config, rows, rows, o.max_batch, max_ctx, backend->act_dtype(), backend->device()),
                      host_memory_limit(), (o.model_dir / "config.json").string());
    model = std::make_unique<LlamaModel>(config, ckpt, *backend, o.on_load_progress);
    model->allocate(rows, rows, o.max_batch, max_ctx);
    logits.resize(size_t(rows) * size_t(config.vocab_size));
    step.reserve(size_t(rows));
    load.weight_bytes = model->weight_bytes();
    load.kv_cache_bytes = backend->kv_cache_bytes();
    load.backend = backend->name();
  }

  static Tokenizer load_tokenizer(const EngineOptions& o) {
    auto path = o.tokenizer_file.empty() ? o.model_dir / "tokenizer.model" : o.tokenizer_file;
    return Tokenizer::load(path);
  }

  static std::unique_ptr<Backend> make_backend(const EngineOptions& o) {
    if (o.device == "cpu") return make_cpu_backend(o.threads);
    if (o.device == "cuda") {
#ifdef SSPAN_WITH_CUDA
      DType dt;
      SSPAN_CHECK(parse_dtype(o.dtype, &dt) && dt != DType::F32, "--dtype must be float16 or bfloat16, got '{}'",
                  o.dtype);
      return make_cuda_backend(dt, 0);
#else
      SSPAN_FAIL("this build has no CUDA backend: configure with -DSSPAN_ENABLE_CUDA=ON");
#endif
    }
    SSPAN_FAIL("unknown device '{}': use cpu or cuda", o.device);
  }

  std::string token_text(int32_t id) const { return id == config.bos_token_id ? std::string() : tok.token_bytes(id); }

  bool is_eos(int32_t id) const {
    return std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), id) != config.eos_token_ids.end();
  }

  // Push token `id` (at the state's next position) through the span state, add its row to
  // the step, and emit its trace record.
  void add_row(SpanState& span, int request, int slot, int32_t id, bool generated, const GenerateCallbacks& cb) {
    span.push(token_text(id), !generated);
    const int32_t pos = span.last_pos();
    step.tokens.push_back(id);
    step.pos.push_back(pos);
    step.slot.push_back(slot);
    span.append_last(step.span);
    if (cb.on_trace) {
      TraceRecord r;
      r.request = request;
      r.pos = pos;
      r.id = id;
      r.piece = tok.piece(id);
      r.line = span.last_line();
      r.sparse = span.last_sparse();
      r.generated = generated;
      r.attended = span.last_attended();
      r.n_attended = span.last_count();
      r.sparsity = 1.0 - double(r.n_attended) / double(pos + 1);
      cb.on_trace(r);
    }
  }

  void run_step(int m) {
    model->forward(step.view());
    if (m) model->read_logits(logits, m);
  }

  // Run the step and choose the next token of logit row i with samplers[i]: on the device
  // when the backend can (only ids cross to the host), else from host logits.
  void run_step_and_pick(const std::vector<Sampler*>& samplers) {
    model->forward(step.view());
    const int m = int(samplers.size());
    picked.resize(size_t(m));
    const SamplingConfig cfg = samplers.front()->config();
    uniforms.clear();
    if (cfg.temperature > 0.f)
      for (Sampler* s : samplers) uniforms.push_back(s->uniform());
    if (model->sample_on_device(m, cfg, uniforms, picked)) return;
    model->read_logits(logits, m);
    for (int i = 0; i < m; ++i) {
      picked[size_t(i)] = cfg.temperature > 0.f ? samplers[size_t(i)]->sample(logit_row(i), uniforms[size_t(i)])
                                                : argmax(logit_row(i));
    }
  }

  std::span<const float> logit_row(int i) const {
    return {logits.data() + size_t(i) * size_t(config.vocab_size), size_t(config.vocab_size)};
  }

  void check_prompt_fits(size_t n_tokens, const char* what) const {
    SSPAN_CHECK(int64_t(n_tokens) < max_ctx,
                "{} is {} tokens but the context holds {} (--max-context, model limit {}); it must leave room "
                "for at least one generated token",
                what, n_tokens, max_ctx, config.max_position_embeddings);
  }
};

Engine::Engine(const EngineOptions& options) {
  const auto t0 = Clock::now();
  impl_ = std::make_unique<Impl>(options);
  LoadStats& l = impl_->load;
  l.seconds = seconds_since(t0);
  spdlog::info("loaded {} ({} layers, hidden {}, {:.1f} MB of weights) on {} in {:.2f} s; KV cache {:.1f} MB for {} x {}",
               options.model_dir.string(), impl_->config.num_hidden_layers, impl_->config.hidden_size,
               double(l.weight_bytes) / 1e6, l.backend, l.seconds, double(l.kv_cache_bytes) / 1e6, options.max_batch,
               impl_->max_ctx);
}
Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

const ModelConfig& Engine::config() const { return impl_->config; }
const Tokenizer& Engine::tokenizer() const { return impl_->tok; }
const LoadStats& Engine::load_stats() const { return impl_->load; }
int Engine::max_context() const { return impl_->max_ctx; }
int Engine::max_batch() const { return impl_->opt.max_batch; }

std::vector<GenerationResult> Engine::generate(const std::vector<std::string>& prompts, const GenerateOptions& options,
                                               const GenerateCallbacks& cb) {
  Impl& im = *impl_;
  SSPAN_CHECK(!prompts.empty(), "no prompts to generate from");
  SSPAN_CHECK(int(prompts.size()) <= im.opt.max_batch, "{} prompts but the engine holds {} sequences (--batch size)",
              prompts.size(), im.opt.max_batch);
  SSPAN_CHECK(options.max_new_tokens >= 0, "max new tokens must be >= 0, got {}", options.max_new_tokens);
  SSPAN_CHECK(valid_block_size(options.span.block_size), "span block size must be 16, 32, 64, 128 or 256, got {}",
              options.span.block_size);
  const auto grammar = resolve_policy(options.span.policy);
  const int B = options.span.block_size;

  struct Sequence {
    SpanState span;
    StreamDecoder decoder;
    Sampler sampler;
    SpanTally tally;
    int32_t pending = -1;  // sampled, not yet processed
    bool active = true;
  };
  std::vector<GenerationResult> results(prompts.size());
  std::vector<Sequence> seqs;
  seqs.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    results[i].prompt = prompts[i];
    results[i].prompt_ids = im.tok.encode(prompts[i], /*add_bos=*/true);
    im.check_prompt_fits(results[i].prompt_ids.size(), prompts.size() > 1 ? "a prompt" : "the prompt");
    seqs.push_back({SpanState(grammar, B), StreamDecoder(im.tok), Sampler(options.sampling, im.config.vocab_size),
                    SpanTally{}, -1, true});
  }

  // Record sampled token `id` for sequence i; returns false when the sequence stops.
  auto accept = [&](size_t i, int32_t id) {
    Sequence& s = seqs[i];
    GenerationResult& r = results[i];
    r.ids.push_back(id);
    if (options.stop_at_eos && im.is_eos(id)) {
      r.stop = StopReason::Eos;
      return false;
    }
    std::string piece = s.decoder.push(id);
    if (!piece.empty()) {
      r.text += piece;
      if (cb.on_text) cb.on_text(int(i), piece);
    }
    if (int(r.ids.size()) >= options.max_new_tokens) {
      r.stop = StopReason::Length;
      return false;
    }
    if (s.span.last_pos() + 1 >= im.max_ctx) {
      r.stop = StopReason::Context;
      return false;
    }
    s.pending = id;
    return true;
  };
  auto finish = [&](size_t i) {
    Sequence& s = seqs[i];
    s.active = false;
    std::string rest = s.decoder.finish();
    if (!rest.empty()) {
      results[i].text += rest;
      if (cb.on_text) cb.on_text(int(i), rest);
    }
    results[i].span = s.tally.stats(s.span.events());
  };

  // Prefill: each prompt in passes of up to max_step_rows rows; the last row's logits
  // give the first generated token.
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto t0 = Clock::now();
    const auto& ids = results[i].prompt_ids;
    for (size_t begin = 0; begin < ids.size(); begin += size_t(im.model->max_rows())) {
      const size_t end = std::min(ids.size(), begin + size_t(im.model->max_rows()));
      im.step.reset(B);
      for (size_t p = begin; p < end; ++p) im.add_row(seqs[i].span, int(i), int(i), ids[p], false, cb);
      const bool last = end == ids.size();
      if (last) {
        im.step.logit_rows.push_back(int32_t(end - begin - 1));
        im.run_step_and_pick({&seqs[i].sampler});
      } else {
        im.run_step(0);
      }
    }
    results[i].prefill_seconds = seconds_since(t0);
    if (options.max_new_tokens == 0) {
      results[i].stop = StopReason::Length;
      finish(i);
      continue;
    }
    if (!accept(i, im.picked[0])) finish(i);
  }

  // Decode: one token per active sequence per step.
  const auto t_decode = Clock::now();
  std::vector<size_t> rows;  // sequence of each row
  std::vector<Sampler*> samplers;
  rows.reserve(prompts.size());
  samplers.reserve(prompts.size());
  while (true) {
    im.step.reset(B);
    rows.clear();
    samplers.clear();
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (!seqs[i].active) continue;
      im.add_row(seqs[i].span, int(i), int(i), seqs[i].pending, true, cb);
      seqs[i].tally.add(seqs[i].span.last_sparse(), seqs[i].span.last_count(), seqs[i].span.last_pos());
      im.step.logit_rows.push_back(int32_t(rows.size()));
      rows.push_back(i);
      samplers.push_back(&seqs[i].sampler);
    }
    if (rows.empty()) break;
    im.run_step_and_pick(samplers);
    for (size_t r = 0; r < rows.size(); ++r)
      if (!accept(rows[r], im.picked[r])) finish(rows[r]);
  }
  const double decode_s = seconds_since(t_decode);
  for (auto& r : results) r.decode_seconds = decode_s;
  return results;
}

ScoreResult Engine::score(std::string_view prompt, std::string_view completion, const SpanOptions& span_opt,
                          const GenerateCallbacks& cb) {
  Impl& im = *impl_;
  SSPAN_CHECK(valid_block_size(span_opt.block_size), "span block size must be 16, 32, 64, 128 or 256, got {}",
              span_opt.block_size);
  const auto t0 = Clock::now();
  ScoreResult res;
  res.prompt_ids = im.tok.encode(prompt, /*add_bos=*/true);
  const std::vector<int> comp = im.tok.encode_continuation(completion);
  SSPAN_CHECK(!comp.empty(), "the completion to score is empty");
  std::vector<int> all = res.prompt_ids;
  all.insert(all.end(), comp.begin(), comp.end());
  SSPAN_CHECK(int64_t(all.size()) <= im.max_ctx, "prompt + completion are {} tokens but the context holds {}",
              all.size(), im.max_ctx);

  SpanState span(resolve_policy(span_opt.policy), span_opt.block_size);
  SpanTally tally;
  const size_t P = res.prompt_ids.size();
  const int B = span_opt.block_size;
  for (size_t begin = 0; begin < all.size(); begin += size_t(im.model->max_rows())) {
    const size_t end = std::min(all.size(), begin + size_t(im.model->max_rows()));
    im.step.reset(B);
    for (size_t p = begin; p < end; ++p) {
      im.add_row(span, 0, 0, all[p], p >= P, cb);
      if (p >= P) tally.add(span.last_sparse(), span.last_count(), span.last_pos());
      // Row p predicts token p + 1: keep the rows that predict completion tokens.
      if (p + 1 >= P && p + 1 < all.size()) im.step.logit_rows.push_back(int32_t(p - begin));
    }
    const int m = int(im.step.logit_rows.size());
    im.run_step(m);
    for (int r = 0; r < m; ++r) {
      const size_t p = begin + size_t(im.step.logit_rows[size_t(r)]);
      const auto row = im.logit_row(r);
      const float mx = *std::max_element(row.begin(), row.end());
      double sum = 0.0;
      for (float v : row) sum += std::exp(double(v) - mx);
      const int32_t next = all[p + 1];
      const double lp = double(row[size_t(next)]) - mx - std::log(sum);
      res.tokens.push_back({next, im.tok.piece(next), lp});
      res.nll -= lp;
    }
  }
  res.perplexity = std::exp(res.nll / double(res.tokens.size()));
  res.seconds = seconds_since(t0);
  res.span = tally.stats(span.events());
  return res;
}

}  // namespace sspan
