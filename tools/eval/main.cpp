// sspan-eval: run a model over a JSONL test set under one or more span policies and report
// task quality (arith accuracy as the paper measures it, or ROUGE for summaries),
// tokens/s and mean sparsity, overall and per length bucket of the reference solution.
// Buckets run one at a time through the scheduler (continuous batching: a finished
// sequence's slot is refilled from the same bucket), as `sspan-bench e2e` runs them.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

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

struct Args {
  std::string model_dir, data, task = "arith", format = "md", device = "cpu", tokenizer, kv_dtype = "auto";
  std::vector<std::string> spans{"dense", "arith"};
  int batch = 8, max_new = 512, bucket = 256, limit = 0, threads = 0, block = 64, max_context = 0;
};

// Per (policy, bucket) totals.
struct Tally {
  int n = 0, correct = 0;
  double rouge1 = 0, rouge2 = 0, rougeL = 0, rougeLsum = 0;
  int64_t tokens = 0, sparse_den = 0;
  double seconds = 0, sparsity_sum = 0;
  void add(const Tally& o) {
    n += o.n, correct += o.correct, rouge1 += o.rouge1, rouge2 += o.rouge2, rougeL += o.rougeL,
        rougeLsum += o.rougeLsum, tokens += o.tokens, seconds += o.seconds, sparsity_sum += o.sparsity_sum,
        sparse_den += o.sparse_den;
  }
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

std::string bucket_name(int b, int size) { return fmt::format("{}-{}", b * size, (b + 1) * size); }

// Tokens/s of `policy` in bucket b over the dense policy's, when dense ran too.
double ratio_vs_dense(const std::map<std::string, std::map<int, Tally>>& t, const std::string& policy, int b) {
  const auto d = t.find("dense");
  if (d == t.end() || !d->second.count(b)) return 0;
  const Tally& x = t.at(policy).at(b);
  const Tally& y = d->second.at(b);
  if (x.seconds <= 0 || y.seconds <= 0 || y.tokens == 0) return 0;
  return (double(x.tokens) / x.seconds) / (double(y.tokens) / y.seconds);
}

void print_table(const Args& a, const std::map<std::string, std::map<int, Tally>>& t) {
  const bool arith = a.task == "arith";
  if (a.format == "json") {
    json out = json::array();
    for (const auto& [policy, buckets] : t)
      for (const auto& [b, x] : buckets) {
        json row = {{"span", policy},
                    {"bucket", b == INT32_MAX ? "all" : bucket_name(b, a.bucket)},
                    {"n", x.n},
                    {"tokens_per_s", x.seconds > 0 ? double(x.tokens) / x.seconds : 0},
                    {"tokens_per_s_vs_dense", ratio_vs_dense(t, policy, b)},
                    {"mean_sparsity", x.sparse_den ? x.sparsity_sum / double(x.sparse_den) : 0}};
        if (arith) row["accuracy"] = x.n ? double(x.correct) / x.n : 0;
        else row["rouge"] = {{"rouge1", x.rouge1 / x.n}, {"rouge2", x.rouge2 / x.n}, {"rougeL", x.rougeL / x.n},
                             {"rougeLsum", x.rougeLsum / x.n}};
        out.push_back(row);
      }
    std::cout << out.dump(2) << "\n";
    return;
  }
  const bool csv = a.format == "csv";
  const std::string quality = arith ? "accuracy %" : "R.1 | R.2 | R.L | R.Lsum";
  if (csv)
    std::cout << (arith ? "bucket,span,n,accuracy,tokens_per_s,tokens_per_s_vs_dense,mean_sparsity\n"
                        : "bucket,span,n,rouge1,rouge2,rougeL,rougeLsum,tokens_per_s,tokens_per_s_vs_dense,mean_sparsity\n");
  else
    std::cout << "| bucket (reference tokens) | span | n | " << quality
              << " | tokens/s | vs dense | mean sparsity |\n|---|---|---:|" << (arith ? "---:" : "---:|---:|---:|---:")
              << "|---:|---:|---:|\n";
  std::map<int, std::vector<std::pair<std::string, Tally>>> by_bucket;
  for (const auto& [policy, buckets] : t)
    for (const auto& [b, x] : buckets) by_bucket[b].push_back({policy, x});
  for (auto& [b, rows] : by_bucket) {
    const std::string name = b == INT32_MAX ? "all" : bucket_name(b, a.bucket);
    for (const auto& [policy, x] : rows) {
      const double tps = x.seconds > 0 ? double(x.tokens) / x.seconds : 0;
      const double sp = x.sparse_den ? x.sparsity_sum / double(x.sparse_den) : 0;
      const double vs = ratio_vs_dense(t, policy, b);
      const std::string vs_text = vs > 0 ? fmt::format("{:.3f}", vs) : (csv ? "" : "-");
      const std::string q = arith ? fmt::format("{:.1f}", 100.0 * x.correct / x.n)
                                  : fmt::format(fmt::runtime(csv ? "{:.4f},{:.4f},{:.4f},{:.4f}" : "{:.1f} | {:.1f} | {:.1f} | {:.1f}"),
                                                (csv ? 1 : 100) * x.rouge1 / x.n, (csv ? 1 : 100) * x.rouge2 / x.n,
                                                (csv ? 1 : 100) * x.rougeL / x.n, (csv ? 1 : 100) * x.rougeLsum / x.n);
      if (csv)
        std::cout << fmt::format("{},{},{},{},{:.1f},{},{:.4f}\n", name, policy, x.n, q, tps, vs_text, sp);
      else
        std::cout << fmt::format("| {} | {} | {} | {} | {:.1f} | {} | {:.3f} |\n", name, policy, x.n, q, tps, vs_text, sp);
    }
  }
}

int run(const Args& a) {
  // Policies first: a typo is an error before anything loads. "recycled:k=64,stride=16"
  // is one policy, however the command line split it.
  const std::vector<std::string> spans = sspan::SpanPolicy::split_list(fmt::format("{}", fmt::join(a.spans, ",")));
  for (const auto& p : spans) sspan::SpanPolicy::parse(p, a.block);
  auto records = read_records(a.data, a.limit);
  sspan::EngineOptions eo;
  eo.model_dir = a.model_dir;
  eo.tokenizer_file = a.tokenizer;
  eo.device = a.device;
  eo.threads = a.threads;
  eo.kv_dtype = a.kv_dtype;
  eo.max_batch = a.batch;
  eo.max_context = a.max_context;
  sspan::Engine engine(eo);
  for (auto& r : records) r.ref_tokens = int(engine.tokenizer().encode_continuation(r.completion).size());

  std::map<int, std::vector<size_t>> buckets;  // bucket -> records, in file order
  for (size_t i = 0; i < records.size(); ++i) buckets[records[i].ref_tokens / a.bucket].push_back(i);

  std::map<std::string, std::map<int, Tally>> table;
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
      }
      bucket_total.seconds = wall;  // tokens/s: the bucket's generated tokens over its wall time
      table[policy][bucket].add(bucket_total);
      table[policy][INT32_MAX].add(bucket_total);
      std::fprintf(stderr, "%s: bucket %s, %zu records, %.1f s\n", policy.c_str(), bucket_name(bucket, a.bucket).c_str(),
                   members.size(), wall);
    }
  }
  // md is a report for people: the run's description heads it. json and csv are
  // documents for programs: stdout holds the document alone, the description goes to stderr.
  const std::string about = fmt::format("model {} | test set {} ({} records) | batch {} | {}", a.model_dir, a.data,
                                        records.size(), a.batch, engine.load_stats().backend);
  if (a.format == "md")
    std::cout << about << "\n\n";
  else
    std::fprintf(stderr, "%s\n", about.c_str());
  print_table(a, table);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sspan-eval: task quality, tokens/s and sparsity of span policies on a JSONL test set"};
  Args a;
  app.add_option("-m,--model", a.model_dir, "Model: a directory, a .gguf file or a .safetensors file")
      ->required()
      ->check(CLI::ExistingPath);
  app.add_option("-d,--data", a.data, "JSONL test set: {prompt, completion[, answer]} per line")->required();
  app.add_option("--task", a.task, "arith (accuracy of the last term) or summary (ROUGE)")
      ->check(CLI::IsMember({"arith", "summary"}));
  app.add_option("--span", a.spans, "Span policies to compare (comma-separated)")->delimiter(',');
  app.add_option("--batch", a.batch, "Sequences decoded together (KV slots)")->check(CLI::PositiveNumber);
  app.add_option("-n,--n-predict", a.max_new, "Maximum generated tokens per record")->check(CLI::PositiveNumber);
  app.add_option("--bucket", a.bucket, "Length bucket size in reference completion tokens")->check(CLI::PositiveNumber);
  app.add_option("--limit", a.limit, "Evaluate only the first N records")->check(CLI::NonNegativeNumber);
  app.add_option("--span-block", a.block, "Span encoding block size")->check(CLI::IsMember({16, 32, 64, 128, 256}));
  app.add_option("--max-context", a.max_context, "KV cache context length")->check(CLI::PositiveNumber);
  app.add_option("--format", a.format, "md, csv or json")->check(CLI::IsMember({"md", "csv", "json"}));
  app.add_option("--device", a.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--tokenizer", a.tokenizer, "Tokenizer file (default: the model's own)");
  app.add_option("-t,--threads", a.threads, "CPU threads (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option("--kv-dtype", a.kv_dtype, "CPU KV cache type (auto: f16 for half-precision checkpoints)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
  CLI11_PARSE(app, argc, argv);
  sspan::set_log_level(sspan::LogLevel::Warn);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sspan-eval: error: %s\n", e.what());
    return 1;
  }
}
