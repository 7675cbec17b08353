// sspan-eval: run a model over a JSONL test set under one or more span policies and report
// task quality (arith accuracy as the paper measures it, or ROUGE for summaries),
// tokens/s and mean sparsity, overall and per length bucket of the reference solution.
// Buckets run one at a time through the scheduler (continuous batching: a finished
// sequence's slot is refilled from the same bucket), as `sspan-bench e2e` runs them.
// --samples FILE keeps every record's output (one JSON object per record and policy).
// With --score FILE instead: the perplexity of a text under each policy, every scored
// token predicted by a decode step under it (eval/perplexity.h), per bucket of position.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/perplexity.h"
#include "eval/report.h"
#include "eval/rouge.h"
#include "io/json_strict.h"
#include "sspan/engine.h"
#include "sspan/error.h"
#include "sspan/log.h"
#include "sspan/scheduler.h"

namespace {

using nlohmann::json;

struct Record {
  std::string prompt, completion, answer;
  int ref_tokens = 0;
  int line = 0;  // in the test set file
};

using sspan::eval::kAll;
using sspan::eval::PolicyTable;
using sspan::eval::Tally;

struct Args {
  std::string model_dir, data, score, task = "arith", format = "md", device = "cpu", tokenizer, kv_dtype = "auto";
  std::string samples;  // --data: JSONL of every record's output
  std::vector<std::string> spans{"dense", "arith"};
  int batch = 8, max_new = 512, bucket = 256, limit = 0, threads = 0, block = 64, max_context = 0;
  int chunk = 0, prefix = 1;  // --score
  // Options given on the command line that only one of the two modes reads.
  std::vector<std::string> data_only, score_only;
};

std::vector<Record> read_records(const std::string& path, int limit) {
  std::ifstream f(path);
  if (!f) throw sspan::Error("cannot read test set '" + path + "'");
  std::vector<Record> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json j = sspan::io::parse_json_strict(line, fmt::format("{}:{}", path, n));  // bounded nesting
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string() || !j.contains("completion") ||
        !j["completion"].is_string())
      throw sspan::Error(fmt::format("{}:{}: expected an object with string 'prompt' and 'completion'", path, n));
    Record r{j["prompt"], j["completion"], "", 0, n};
    if (j.contains("answer")) r.answer = j["answer"].is_string() ? j["answer"].get<std::string>() : j["answer"].dump();
    out.push_back(std::move(r));
    if (limit > 0 && int(out.size()) >= limit) break;
  }
  if (out.empty()) throw sspan::Error("test set '" + path + "' holds no records");
  return out;
}

// The paper's arith metric: split the output at spaces, parse the last term as an integer.
bool arith_correct(const std::string& output, const std::string& answer) {
  std::istringstream in(output);
  std::string term, last;
  while (in >> term) last = term;
  if (last.empty()) return false;
  try {
    size_t used = 0;
    const long long v = std::stoll(last, &used);
    return used == last.size() && v == std::stoll(answer);
  } catch (const std::exception&) {
    return false;
  }
}

// Summary lines without their leading reference lists ("(0-2) text" -> "text").
std::string strip_refs(const std::string& text) {
  std::istringstream in(text);
  std::string out, line;
  while (std::getline(in, line)) {
    const size_t a = line.find_first_not_of(' ');
    if (a != std::string::npos && line[a] == '(') {
      const size_t b = line.find(')', a);
      if (b != std::string::npos) line = line.substr(b + 1);
    }
    out += line + "\n";
  }
  return out;
}

// md is a report for people: the run's description heads it. json and csv are
// documents for programs: stdout holds the document alone, the description goes to stderr.
void print_report(const Args& a, const std::string& about, const sspan::eval::ReportLayout& layout,
                  const PolicyTable& table) {
  if (a.format == "md")
    std::cout << about << "\n\n";
  else
    std::fprintf(stderr, "%s\n", about.c_str());
  sspan::eval::print_table(layout, table);
}

sspan::Engine load_engine(const Args& a, int max_context) {
  sspan::EngineOptions eo;
  eo.model_dir = a.model_dir;
  eo.tokenizer_file = a.tokenizer;
  eo.device = a.device;
  eo.threads = a.threads;
  eo.kv_dtype = a.kv_dtype;
  eo.max_batch = a.batch;
  eo.max_context = max_context;
  return sspan::Engine(eo);
}

// One line of --samples: what the model wrote for a record under a policy, and its score.
json sample_line(const std::string& policy, const Record& rec, const sspan::GenerationResult& res, const Tally& x,
                 const std::string& task) {
  json j = {{"policy", policy},       {"line", rec.line},      {"prompt", rec.prompt},
            {"reference", rec.completion}, {"output", res.text}, {"tokens", res.ids.size()},
            {"sparsity", res.span.mean_sparsity}, {"stop", std::string(sspan::stop_reason_name(res.stop))}};
  if (task == "arith") {
    j["answer"] = rec.answer;
    j["correct"] = x.correct > 0;
  } else {
    j["rouge1"] = x.rouge1, j["rouge2"] = x.rouge2, j["rougeL"] = x.rougeL, j["rougeLsum"] = x.rougeLsum;
  }
  return j;
}

int run_tasks(const Args& a, const std::vector<std::string>& spans) {
  auto records = read_records(a.data, a.limit);
  std::ofstream samples;
  if (!a.samples.empty()) {
    samples.open(a.samples);
    if (!samples) throw sspan::Error("cannot write --samples file '" + a.samples + "'");
  }
  sspan::Engine engine = load_engine(a, a.max_context);
  for (auto& r : records) r.ref_tokens = int(engine.tokenizer().encode_continuation(r.completion).size());

  std::map<int, std::vector<size_t>> buckets;  // bucket -> records, in file order
  for (size_t i = 0; i < records.size(); ++i) buckets[records[i].ref_tokens / a.bucket].push_back(i);

  PolicyTable table;
  for (const auto& policy : spans) {
    sspan::GenerateOptions g;
    g.max_new_tokens = a.max_new;
    g.span = {policy, a.block};
    for (const auto& [bucket, members] : buckets) {
      // The bucket through the scheduler: its records wait in the queue and refill freed slots.
      sspan::Scheduler scheduler(engine);
      std::vector<sspan::RequestHandle> handles;
      for (size_t i : members) {
        sspan::Request req;
        req.prompt = records[i].prompt;
        req.options = g;
        try {
          handles.push_back(scheduler.submit(std::move(req)));
        } catch (const sspan::Error& e) {
          throw sspan::Error(fmt::format("{}:{}: {}", a.data, records[i].line, e.what()));
        }
      }
      const auto t0 = std::chrono::steady_clock::now();
      scheduler.run_until_idle();
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      Tally bucket_total;
      for (size_t k = 0; k < members.size(); ++k) {
        const auto& res = handles[k].wait();
        if (res.stop == sspan::StopReason::Error) throw sspan::Error(res.error);
        const Record& rec = records[members[k]];
        Tally x;
        x.n = 1;
        if (a.task == "arith") {
          x.correct = arith_correct(res.text, rec.answer);
        } else {
          const auto s = sspan::eval::rouge(strip_refs(rec.completion), strip_refs(res.text));
          x.rouge1 = s.rouge1, x.rouge2 = s.rouge2, x.rougeL = s.rougeL, x.rougeLsum = s.rougeLsum;
        }
        x.tokens = int64_t(res.ids.size());
        const int64_t processed = res.span.sparse_tokens + res.span.dense_tokens;
        x.sparsity_sum = res.span.mean_sparsity * double(processed);
        x.sparse_den = processed;
        bucket_total.add(x);
        // invalid UTF-8 (a byte piece that is not text) becomes U+FFFD rather than an exception
        if (samples.is_open())
          samples << sample_line(policy, rec, res, x, a.task).dump(-1, ' ', false, json::error_handler_t::replace)
                  << "\n";
      }
      if (samples.is_open() && !samples.flush())
        throw sspan::Error("writing --samples file '" + a.samples + "' failed");
      bucket_total.seconds = wall;  // tokens/s: the bucket's generated tokens over its wall time
      table[policy][bucket].add(bucket_total);
      table[policy][kAll].add(bucket_total);
      std::fprintf(stderr, "%s: bucket %s, %zu records, %.1f s\n", policy.c_str(),
                   sspan::eval::bucket_name(bucket, a.bucket).c_str(), members.size(), wall);
    }
  }
  const std::string about = fmt::format("model {} | test set {} ({} records) | batch {} | {}", a.model_dir, a.data,
                                        records.size(), a.batch, engine.load_stats().backend);
  const sspan::eval::Quality q = a.task == "arith" ? sspan::eval::Quality::Accuracy : sspan::eval::Quality::Rouge;
  print_report(a, about, {q, a.format, a.bucket, "reference tokens"}, table);
  return 0;
}

int run_score(const Args& a, const std::vector<std::string>& spans) {
  // The KV cache holds one chunk per slot: --chunk sizes it unless --max-context does.
  sspan::Engine engine = load_engine(a, a.max_context > 0 ? a.max_context : a.chunk);
  const int chunk = a.chunk > 0 ? a.chunk : engine.max_context();
  if (chunk > engine.max_context())
    throw sspan::Error(fmt::format("--chunk {} is longer than the context of {} tokens (--max-context; model limit {})",
                                   chunk, engine.max_context(), engine.config().max_position_embeddings));
  const auto text = sspan::eval::read_text_chunks(a.score, engine.tokenizer(), chunk, a.prefix, a.limit);
  if (text.dropped_tokens > 0)
    std::fprintf(stderr, "%s: %lld of %lld tokens not scored (%s)\n", a.score.c_str(),
                 static_cast<long long>(text.dropped_tokens), static_cast<long long>(text.text_tokens),
                 a.limit > 0 ? "--limit, or a final chunk too short" : "a final chunk too short to score");

  PolicyTable table;
  for (const auto& policy : spans) {
    const sspan::eval::ScoreOptions o{{policy, a.block}, a.prefix, a.bucket};
    table[policy] = sspan::eval::score_chunks(engine, text.chunks, o);
    const Tally& all = table[policy][kAll];
    std::fprintf(stderr, "%s: %d chunks, %lld tokens scored, %.1f s\n", policy.c_str(), all.n,
                 static_cast<long long>(all.tokens), all.seconds);
  }
  const std::string about =
      fmt::format("model {} | text {} ({} tokens, {} chunks of up to {}, prefix {}) | batch {} | {}", a.model_dir,
                  a.score, text.text_tokens, text.chunks.size(), chunk, a.prefix, a.batch, engine.load_stats().backend);
  print_report(a, about, {sspan::eval::Quality::Perplexity, a.format, a.bucket, "position in chunk"}, table);
  return 0;
}

int run(const Args& a) {
  if (a.data.empty() == a.score.empty())
    throw sspan::Error(a.data.empty() ? "give a JSONL test set (--data FILE) or a text to score (--score FILE)"
                                      : "--data and --score are two modes: give one of them");
  const auto& wrong = a.data.empty() ? a.data_only : a.score_only;
  if (!wrong.empty())
    throw sspan::Error(fmt::format("{} applies to {} only", wrong.front(), a.data.empty() ? "--data" : "--score"));
  // Policies first: a typo is an error before anything loads. "recycled:k=64,stride=16"
  // is one policy, however the command line split it.
  const std::vector<std::string> spans = sspan::SpanPolicy::split_list(fmt::format("{}", fmt::join(a.spans, ",")));
  for (const auto& p : spans) sspan::SpanPolicy::parse(p, a.block);
  return a.data.empty() ? run_score(a, spans) : run_tasks(a, spans);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sspan-eval: task quality (a JSONL test set) or perplexity (a text), tokens/s and sparsity of span "
               "policies"};
  Args a;
  app.add_option("-m,--model", a.model_dir, "Model: a directory, a .gguf file or a .safetensors file")
      ->required()
      ->check(CLI::ExistingPath);
  app.add_option("-d,--data", a.data, "JSONL test set: {prompt, completion[, answer]} per line");
  app.add_option("--score", a.score,
                 "Text file ('-': standard input) whose perplexity to measure, instead of --data: cut into chunks "
                 "that prefill --prefix tokens and decode the rest teacher-forced; every token predicted by a "
                 "decode step is scored");
  auto* task = app.add_option("--task", a.task, "arith (accuracy of the last term) or summary (ROUGE)")
                   ->check(CLI::IsMember({"arith", "summary"}));
  auto* samples = app.add_option("--samples", a.samples,
                                 "--data: write every record's output to this JSONL file (one object per record and "
                                 "policy: prompt, reference, output, answer, correct or ROUGE, tokens, sparsity, stop)");
  app.add_option("--span", a.spans, "Span policies to compare (comma-separated)")->delimiter(',');
  app.add_option("--batch", a.batch, "Sequences decoded together (KV slots)")->check(CLI::PositiveNumber);
  auto* n_predict =
      app.add_option("-n,--n-predict", a.max_new, "Maximum generated tokens per record")->check(CLI::PositiveNumber);
  app.add_option("--bucket", a.bucket,
                 "Length bucket size: in reference completion tokens (--data) or positions in the chunk (--score)")
      ->check(CLI::PositiveNumber);
  app.add_option("--limit", a.limit, "Evaluate only the first N records (--score: chunks)")
      ->check(CLI::NonNegativeNumber);
  auto* chunk = app.add_option("--chunk", a.chunk,
                               "--score: tokens per chunk, BOS included (default: the context; llama-perplexity's -c)")
                    ->check(CLI::PositiveNumber);
  auto* prefix = app.add_option("--prefix", a.prefix,
                                "--score: tokens of each chunk prefilled before decoding (default 1: BOS, when the "
                                "tokenizer adds one)")
                     ->check(CLI::PositiveNumber);
  app.add_option("--span-block", a.block, "Span encoding block size")->check(CLI::IsMember({16, 32, 64, 128, 256}));
  app.add_option("--max-context", a.max_context, "KV cache context length")->check(CLI::PositiveNumber);
  app.add_option("--format", a.format, "md, csv or json")->check(CLI::IsMember({"md", "csv", "json"}));
  app.add_option("--device", a.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--tokenizer", a.tokenizer, "Tokenizer file (default: the model's own)");
  app.add_option("-t,--threads", a.threads, "CPU threads (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option("--kv-dtype", a.kv_dtype, "CPU KV cache type (auto: f16 for half-precision checkpoints)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
  CLI11_PARSE(app, argc, argv);
  for (const CLI::Option* o : {task, n_predict, samples})
    if (o->count() > 0) a.data_only.push_back(o->get_name());
  for (const CLI::Option* o : {chunk, prefix})
    if (o->count() > 0) a.score_only.push_back(o->get_name());
  sspan::set_log_level(sspan::LogLevel::Warn);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sspan-eval: error: %s\n", e.what());
    return 1;
  }
}
