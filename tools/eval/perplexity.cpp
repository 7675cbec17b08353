#include "eval/perplexity.h"

#include <fmt/format.h>

#include <chrono>
#include <set>

#include "common/check.h"
#include "common/text_input.h"
#include "sspan/error.h"
#include "sspan/scheduler.h"

namespace sspan::eval {

TextChunks read_text_chunks(const std::string& path, const Tokenizer& tok, int chunk, int prefix, int limit) {
  SSPAN_CHECK(prefix >= 1, "the prefix must be at least 1 token, got {}", prefix);
  const bool bos = tok.add_bos();
  const int64_t min_chunk = int64_t(prefix) + 2;  // the prefix, the token prefill predicts, one decode-predicted
  SSPAN_CHECK(chunk >= min_chunk, "the chunk ({} tokens) must hold the prefix ({}) and at least 2 more tokens",
              chunk, prefix);
  const std::string text = tools::read_utf8_text(path, "text file");
  if (text.empty()) throw Error(fmt::format("text file '{}' is empty", path));
  const std::vector<int> ids = tok.encode(text, /*add_bos=*/false);
  if (ids.size() < 2)
    throw Error(fmt::format("text file '{}' is {} token{}; perplexity needs at least 2", path, ids.size(),
                            ids.size() == 1 ? "" : "s"));

  TextChunks out;
  out.text_tokens = int64_t(ids.size());
  const size_t body = size_t(chunk - (bos ? 1 : 0));  // text tokens per chunk
  for (size_t at = 0; at < ids.size(); at += body) {
    const size_t end = std::min(ids.size(), at + body);
    if (int64_t(end - at) + (bos ? 1 : 0) < min_chunk || (limit > 0 && int(out.chunks.size()) >= limit)) {
      out.dropped_tokens += int64_t(end - at);
      continue;
    }
    std::vector<int32_t> c;
    c.reserve(end - at + 1);
    if (bos) c.push_back(int32_t(tok.bos_id()));
    c.insert(c.end(), ids.begin() + std::ptrdiff_t(at), ids.begin() + std::ptrdiff_t(end));
    out.chunks.push_back(std::move(c));
  }
  if (out.chunks.empty())
    throw Error(fmt::format("text file '{}' is {} tokens: too few to score with a prefix of {} (a chunk needs {} "
                            "tokens{}: the prefix, the token its prefill predicts, one predicted by a decode step)",
                            path, ids.size(), prefix, min_chunk, bos ? ", BOS included" : ""));
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;

// What the run reports about one chunk's forced tokens, by index k among them.
struct ChunkSeen {
  std::vector<int64_t> step;      // [k] the scheduler step that produced token k
  std::vector<double> sparsity;   // [k] the sparsity of the row that predicted token k
};

Request chunk_request(const std::vector<int32_t>& chunk, const ScoreOptions& o) {
  Request r;
  r.prompt_ids.assign(chunk.begin(), chunk.begin() + o.prefix);
  r.forced.assign(chunk.begin() + o.prefix, chunk.end());
  r.forced_mode = ForcedMode::Decode;
  r.options.max_new_tokens = int(r.forced.size());
  r.options.span = o.span;
  r.options.stop_at_eos = false;
  r.options.logprobs = true;
  return r;
}

}  // namespace

std::map<int, Tally> score_chunks(Engine& engine, const std::vector<std::vector<int32_t>>& chunks,
                                  const ScoreOptions& o) {
  SSPAN_CHECK(o.bucket >= 1, "the bucket size must be positive, got {}", o.bucket);
  Scheduler scheduler(engine, {.max_queued = int(chunks.size()) + 1});
  std::vector<ChunkSeen> seen(chunks.size());
  std::vector<RequestHandle> handles;
  int64_t step = 0;  // the step now running, for the callbacks (they run inside step())
  for (size_t c = 0; c < chunks.size(); ++c) {
    SSPAN_CHECK(int64_t(chunks[c].size()) >= int64_t(o.prefix) + 2,
                "chunk {} has {} tokens; with a prefix of {} it needs {}", c, chunks[c].size(), o.prefix, o.prefix + 2);
    Request r = chunk_request(chunks[c], o);
    // (Not on_trace: building a trace record of every row would count in tokens/s.)
    r.on_token = [&seen, &step, c](const TokenEvent& e) {
      if (e.id < 0) return true;  // the final flush
      seen[c].step.push_back(step);
      seen[c].sparsity.push_back(e.sparsity);
      return true;
    };
    try {
      handles.push_back(scheduler.submit(std::move(r)));
    } catch (const Error& e) {
      throw Error(fmt::format("chunk {}: {}", c, e.what()));
    }
  }

  std::vector<double> step_seconds;
  const auto t0 = Clock::now();
  for (;;) {
    const auto s0 = Clock::now();
    if (!scheduler.step()) break;
    step_seconds.push_back(std::chrono::duration<double>(Clock::now() - s0).count());
    ++step;
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();

  // A step's time, shared evenly by the tokens it produced.
  std::vector<int> step_tokens(step_seconds.size(), 0);
  for (const ChunkSeen& s : seen)
    for (int64_t k : s.step) ++step_tokens[size_t(k)];

  std::map<int, Tally> out;
  std::map<int, std::set<size_t>> reached;  // bucket -> chunks with a scored token in it
  Tally& all = out[kAll];
  for (size_t c = 0; c < chunks.size(); ++c) {
    const GenerationResult& g = handles[c].wait();
    if (g.stop == StopReason::Error) throw Error(fmt::format("chunk {}: {}", c, g.error));
    const size_t F = chunks[c].size() - size_t(o.prefix);  // forced tokens
    const ChunkSeen& s = seen[c];
    if (g.stop != StopReason::Forced || g.logprobs.size() != F || s.step.size() != F || s.sparsity.size() != F)
      throw Error(fmt::format("chunk {}: the teacher-forced run stopped ({}) after {} of {} tokens", c,
                              stop_reason_name(g.stop), g.ids.size(), F));
    for (size_t k = 1; k < F; ++k) {  // k = 0 is predicted by the prefill, not by a decode step
      const int pos = o.prefix + int(k);
      const int b = pos / o.bucket;
      Tally x;
      x.tokens = 1;
      x.nll = -g.logprobs[k].logprob;
      x.sparsity_sum = s.sparsity[k];  // of the decode row at pos - 1, which predicted it
      x.sparse_den = 1;
      x.seconds = step_seconds[size_t(s.step[k])] / step_tokens[size_t(s.step[k])];
      out[b].add(x);
      x.seconds = 0;  // kAll's seconds are the wall time
      all.add(x);
      reached[b].insert(c);
    }
  }
  for (const auto& [b, members] : reached) out[b].n = int(members.size());
  all.n = int(chunks.size());
  all.seconds = wall;
  return out;
}

}  // namespace sspan::eval
