// The engine: loading (config, checkpoint, tokenizer, backend, KV cache), the step-level
// API, and generate()/score() as thin wrappers over a Scheduler (the one decode loop).
#include "sspan/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/check.h"
#include "common/log.h"
#include "io/model_files.h"
#include "runtime/engine_impl.h"
#include "sspan/dtype.h"
#include "sspan/scheduler.h"

namespace sspan {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// What quantized GGUF weights are dequantized to: the backend's weight dtype.
DType weight_dtype(const EngineOptions& o) {
  DType dt = DType::F16;
  return o.device == "cuda" && parse_dtype(o.dtype, &dt) ? dt : DType::F32;
}

std::unique_ptr<Backend> make_backend(const EngineOptions& o, const Checkpoint& ckpt) {
  if (o.device == "cpu") return make_cpu_backend(o.threads, cpu_kv_dtype(o.kv_dtype, ckpt));
  if (o.device == "cuda") {
    SSPAN_CHECK(o.kv_dtype == "auto", "--kv-dtype {} applies to the CPU; on a GPU the KV cache is kept in --dtype",
                o.kv_dtype);
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

}  // namespace

Engine::Impl::Impl(const EngineOptions& o) : Impl(o, open_model_files(o.model_dir, o.tokenizer_file, weight_dtype(o))) {}

Engine::Impl::Impl(const EngineOptions& o, ModelFiles&& files)
    : opt(o), config(std::move(files.config)), ckpt(std::move(files.checkpoint)), tok(std::move(files.tokenizer)) {
  SSPAN_CHECK(o.max_batch >= 1, "max batch must be >= 1, got {}", o.max_batch);
  SSPAN_CHECK(o.max_step_rows >= 1, "max step rows must be >= 1, got {}", o.max_step_rows);
  check_vocabularies();
  max_ctx = o.max_context > 0 ? o.max_context : std::min(config.max_position_embeddings, 4096);
  SSPAN_CHECK(max_ctx >= 2, "max context must be >= 2, got {}", max_ctx);
  if (max_ctx > config.max_position_embeddings)
    logger().warn("max context {} exceeds the model's max_position_embeddings {}", max_ctx,
                  config.max_position_embeddings);
  backend = make_backend(o, ckpt);
  // A step holds the decode rows of every slot or a prompt chunk, whichever is larger.
  const int rows = std::max(o.max_step_rows, o.max_batch);
  // Every buffer's bytes before any is allocated or a weight is loaded: a config asking
  // for terabytes is an error naming its keys, not std::bad_alloc.
  check_memory_plan(plan_memory(config, rows, rows, o.max_batch, max_ctx, backend->act_dtype(), backend->kv_dtype(),
                                backend->device()),
                    host_memory_limit(), files.config_file.string());
  model = std::make_unique<LlamaModel>(config, ckpt, *backend, o.on_load_progress);
  model->allocate(rows, rows, o.max_batch, max_ctx);
  steps = std::make_unique<StepRunner>(*model, &tok, config.bos_token_id, o.max_batch, max_ctx, rows);
  load.weight_bytes = model->weight_bytes();
  load.kv_cache_bytes = backend->kv_cache_bytes();
  load.backend = backend->name();
}

// The tokenizer and the model's vocabulary must belong together. Ids past the tokenizer
// (a vocabulary padded to 32001 or 32064 for 32000 pieces) are never sampled: every
// sampler and log-softmax sees only [0, tok.vocab_size()).
void Engine::Impl::check_vocabularies() {
  const int T = tok.vocab_size(), V = config.vocab_size;
  SSPAN_CHECK(T <= V, "tokenizer {} has {} tokens but the model's vocabulary is {}: they do not belong together",
              tok.source(), T, V);
  SSPAN_CHECK(V - T <= std::max(128, T / 16),
              "tokenizer {} has {} tokens but the model's vocabulary is {}: far more than padding, they do not "
              "belong together",
              tok.source(), T, V);
  if (T < V)
    logger().warn("the model's vocabulary ({}) is padded past the tokenizer's {} tokens: ids {}..{} are never sampled",
                  V, T, T, V - 1);
  if (tok.bos_id() < 0) logger().warn("tokenizer {} has no BOS token: prompts are encoded without one", tok.source());
}

std::vector<int> Engine::Impl::encode_prompt(std::string_view text) const {
  std::vector<int> ids = tok.encode(text, tok.add_bos());
  SSPAN_CHECK(!ids.empty(), "the prompt is empty and the tokenizer adds no BOS token: there is nothing to continue");
  return ids;
}

bool Engine::Impl::is_eos(int32_t id) const {
  return std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), id) != config.eos_token_ids.end();
}

std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Eos: return "eos";
    case StopReason::Length: return "length";
    case StopReason::Context: return "context";
    case StopReason::StopString: return "stop";
    case StopReason::Forced: return "forced";
    case StopReason::Cancelled: return "cancelled";
    case StopReason::Error: return "error";
  }
  return "?";
}

Engine::Engine(const EngineOptions& options) {
  const auto t0 = Clock::now();
  impl_ = std::make_unique<Impl>(options);
  LoadStats& l = impl_->load;
  l.seconds = seconds_since(t0);
  logger().info("loaded {} ({} layers, hidden {}, {:.1f} MB of weights) on {} in {:.2f} s; KV cache {:.1f} MB for {} x {}",
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
int Engine::max_step_rows() const { return impl_->steps->max_rows(); }
int Engine::decodable_vocab() const { return impl_->tok.vocab_size(); }
bool Engine::is_eos(int32_t id) const { return impl_->is_eos(id); }

// The element's own size: the cache's total bytes also hold the positions a backend rounds
// its context up to (whole blocks), which no token reads.
double Engine::kv_element_bytes() const { return double(dtype_size(impl_->backend->kv_dtype())); }

// ---- step-level API ----

int Engine::decode(std::span<const StepRow> rows) {
  SSPAN_CHECK(!impl_->scheduled, "Engine::decode: a Scheduler drives this engine's slots");
  return impl_->steps->run(rows);
}
std::span<const float> Engine::logits(int i) { return impl_->steps->logits(i); }
int32_t Engine::slot_length(int slot) const { return impl_->steps->length(slot); }
void Engine::clear_slot(int slot) {
  SSPAN_CHECK(!impl_->scheduled, "Engine::clear_slot: a Scheduler drives this engine's slots");
  impl_->steps->clear(slot);
}
void Engine::truncate_slot(int slot, int32_t length) {
  SSPAN_CHECK(!impl_->scheduled, "Engine::truncate_slot: a Scheduler drives this engine's slots");
  impl_->steps->truncate(slot, length);
}

// ---- whole requests, through the scheduler ----

namespace {

// Run every request to its end on this thread; rethrow the first step failure.
std::vector<GenerationResult> run_all(Engine& engine, std::vector<Request> requests) {
  Scheduler scheduler(engine);
  std::vector<RequestHandle> handles;
  handles.reserve(requests.size());
  for (auto& r : requests) handles.push_back(scheduler.submit(std::move(r)));
  scheduler.run_until_idle();
  std::vector<GenerationResult> results;
  results.reserve(handles.size());
  for (const auto& h : handles) {
    const GenerationResult& r = h.wait();
    if (r.stop == StopReason::Error) throw Error(r.error);
    results.push_back(r);
  }
  return results;
}

}  // namespace

std::vector<GenerationResult> Engine::generate(const std::vector<std::string>& prompts, const GenerateOptions& options,
                                               const GenerateCallbacks& cb) {
  SSPAN_CHECK(!prompts.empty(), "no prompts to generate from");
  std::vector<Request> requests(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request& r = requests[i];
    r.prompt = prompts[i];
    r.options = options;
    const int index = int(i);
    if (cb.on_text)
      r.on_token = [&cb, index](const TokenEvent& e) {
        if (!e.text.empty()) cb.on_text(index, e.text);
        return true;
      };
    if (cb.on_trace)
      r.on_trace = [&cb, index](const TraceRecord& t) {
        TraceRecord copy = t;
        copy.request = index;
        cb.on_trace(copy);
      };
  }
  return run_all(*this, std::move(requests));
}

ScoreResult Engine::score(std::string_view prompt, std::string_view completion, const SpanOptions& span,
                          const GenerateCallbacks& cb) {
  const auto t0 = Clock::now();
  Request r;
  r.prompt = std::string(prompt);
  r.forced = impl_->tok.encode_continuation(completion);
  SSPAN_CHECK(!r.forced.empty(), "the completion to score is empty");
  r.forced_mode = ForcedMode::Prefill;
  r.options.span = span;
  r.options.logprobs = true;
  r.options.max_new_tokens = int(r.forced.size());
  if (cb.on_trace)
    r.on_trace = [&cb](const TraceRecord& t) {
      TraceRecord copy = t;
      copy.request = 0;  // the one request of this call
      cb.on_trace(copy);
    };
  std::vector<Request> one;
  one.push_back(std::move(r));
  const GenerationResult g = std::move(run_all(*this, std::move(one)).front());

  ScoreResult res;
  res.prompt_ids = g.prompt_ids;
  for (const TokenLogprob& t : g.logprobs) {
    res.tokens.push_back({t.id, impl_->tok.piece(t.id), t.logprob});
    res.nll -= t.logprob;
  }
  res.perplexity = std::exp(res.nll / double(res.tokens.size()));
  res.span = g.span;
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace sspan
