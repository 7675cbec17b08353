#include "e2e_replay.h"

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sspan/error.h"

namespace sspan::bench {

std::vector<ReplayRecord> read_replay_records(const std::string& path, const Tokenizer& tok, int limit) {
  std::ifstream f(path);
  if (!f) throw Error(fmt::format("cannot read dataset '{}'", path));
  std::vector<ReplayRecord> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, n);
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) throw Error(where + ": not a JSON object");
    for (const char* key : {"prompt", "completion"})
      if (!j.contains(key) || !j[key].is_string())
        throw Error(fmt::format("{}: the record has no string '{}'", where, key));
    ReplayRecord r;
    r.source = where;
    const auto prompt = tok.encode(j["prompt"].get<std::string>(), tok.add_bos());
    if (prompt.empty()) throw Error(where + ": the prompt is empty and the tokenizer adds no BOS token");
    const auto completion = tok.encode_continuation(j["completion"].get<std::string>());
    if (completion.empty()) throw Error(where + ": the completion is empty");
    r.prompt_ids.assign(prompt.begin(), prompt.end());
    r.completion.assign(completion.begin(), completion.end());
    out.push_back(std::move(r));
    if (limit > 0 && int(out.size()) >= limit) break;
  }
  if (out.empty()) throw Error(fmt::format("dataset '{}' holds no records", path));
  return out;
}

Request replay_request(const ReplayRecord& record, const SpanOptions& span) {
  Request r;
  r.prompt_ids = record.prompt_ids;
  r.forced = record.completion;
  r.forced_mode = ForcedMode::Decode;
  r.options.max_new_tokens = int(record.completion.size());
  r.options.span = span;
  r.options.stop_at_eos = false;
  return r;
}

ReplayTotals replay(Engine& engine, const std::vector<const ReplayRecord*>& records, const SpanOptions& span) {
  Scheduler scheduler(engine, {.max_queued = int(records.size()) + 1});
  std::vector<RequestHandle> handles;
  handles.reserve(records.size());
  for (const ReplayRecord* r : records) {
    try {
      handles.push_back(scheduler.submit(replay_request(*r, span)));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", r->source, e.what()));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  scheduler.run_until_idle();
  ReplayTotals t;
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t i = 0; i < handles.size(); ++i) {
    const GenerationResult& g = handles[i].wait();
    const ReplayRecord& rec = *records[i];
    if (g.stop == StopReason::Error) throw Error(fmt::format("{}: {}", rec.source, g.error));
    // Validation: the whole reference went through, one decode position per token but the last.
    const int64_t processed = g.span.sparse_tokens + g.span.dense_tokens;
    if (g.stop != StopReason::Forced || g.ids != std::vector<int>(rec.completion.begin(), rec.completion.end()) ||
        processed != int64_t(rec.completion.size()) - 1)
      throw Error(fmt::format("{}: the replay stopped ({}) after {} of {} tokens", rec.source,
                              stop_reason_name(g.stop), g.ids.size(), rec.completion.size()));
    ++t.records;
    t.decode_tokens += int64_t(g.ids.size());
    t.decode_positions += processed;
    t.attended += g.span.attended;
    t.sparsity_sum += g.span.mean_sparsity * double(processed);
  }
  return t;
}

}  // namespace sspan::bench
