// sspan-bench e2e: the replay runs the generation loop with the reference as the next
// input, so its per-position span trace is the one --score gives on the same text; bad
// datasets and policies are clear errors naming the record or the policy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>

#include "e2e_replay.h"
#include "runtime/runtime_fixture.h"
#include "support/tool_run.h"

namespace sspan {
namespace {

using ::testing::HasSubstr;

constexpr const char* kPrompt = "(42 * 56) + (5 * 32) [0]\n";
constexpr const char* kCompletion =
    "[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n[-1] So 42 * 56=2352 [1]\n[0,1] 5 * 32=160 [2]\n[0,1,2] 2512\n";

std::filesystem::path write_dataset(const std::string& tag, const std::vector<std::string>& lines) {
  const auto path = test::scratch_dir(tag) / "data.jsonl";
  std::ofstream f(path);
  for (const auto& l : lines) f << l << "\n";
  return path;
}

TEST(E2eReplay, TheReplayTraceIsTheScoreTraceOfTheSameText) {
  Engine e(test::tiny_options(/*batch=*/2));
  const nlohmann::json rec = {{"prompt", kPrompt}, {"completion", kCompletion}};
  const nlohmann::json other = {{"prompt", "(3 + 4) * 2 [0]\n"}, {"completion", "[-1] 3 + 4=7 [1]\n[0,1] 7 * 2=14\n"}};
  const auto path = write_dataset("replay", {rec.dump(), other.dump()});
  const auto records = bench::read_replay_records(path.string(), e.tokenizer());
  ASSERT_EQ(records.size(), 2u);

  for (const char* policy : {"arith", "dense"}) {
    std::vector<TraceRecord> replayed, scored;
    {
      Scheduler s(e);
      Request r = bench::replay_request(records[0], {policy, 32});
      r.on_trace = [&](const TraceRecord& t) { replayed.push_back(t); };
      auto h = s.submit(std::move(r));
      auto busy = s.submit(bench::replay_request(records[1], {"dense", 64}));  // a neighbour in the batch
      s.run_until_idle();
      ASSERT_EQ(h.wait().stop, StopReason::Forced);
      ASSERT_EQ(busy.wait().stop, StopReason::Forced);
    }
    GenerateCallbacks cb;
    cb.on_trace = [&](const TraceRecord& t) { scored.push_back(t); };
    e.score(kPrompt, kCompletion, {policy, 32}, cb);
    ASSERT_EQ(replayed.size(), scored.size()) << policy;
    ASSERT_EQ(replayed.size(), size_t(records[0].positions()));
    int sparse = 0;
    for (size_t p = 0; p < scored.size(); ++p) {
      EXPECT_EQ(replayed[p].pos, scored[p].pos);
      EXPECT_EQ(replayed[p].id, scored[p].id);
      EXPECT_EQ(replayed[p].line, scored[p].line);
      EXPECT_EQ(replayed[p].sparse, scored[p].sparse);
      EXPECT_EQ(replayed[p].generated, scored[p].generated);
      EXPECT_EQ(replayed[p].attended, scored[p].attended) << policy << " position " << p;
      sparse += scored[p].sparse;
    }
    if (std::string(policy) == "arith") {
      EXPECT_GT(sparse, 30);
    }
  }
}

using CliRun = test::ToolRun;

CliRun bench_e2e(const std::string& args) {
  return test::run_command(std::string(SSPAN_BENCH_BIN) + " e2e -m " +
                           (test::source_dir() / "models/arith-tiny").string() + " -t 1 " + args);
}

TEST(E2eCli, RunsDenseAndArithSideBySide) {
  const nlohmann::json rec = {{"prompt", kPrompt}, {"completion", kCompletion}};
  const auto path = write_dataset("ok", {rec.dump(), rec.dump(), rec.dump()});
  const CliRun r = bench_e2e("-d " + path.string() + " --span dense,arith --batch 2 --reps 1 --bucket 64");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("| dense |"));
  EXPECT_THAT(r.out, HasSubstr("| arith |"));
  EXPECT_THAT(r.out, HasSubstr("vs dense"));
  EXPECT_THAT(r.out, HasSubstr("backend: cpu"));
}

TEST(E2eCli, PerBucketReplaysTheFirstRecordsOfEachBucket) {
  const nlohmann::json rec = {{"prompt", kPrompt}, {"completion", kCompletion}};
  const auto path = write_dataset("per_bucket", {rec.dump(), rec.dump(), rec.dump()});
  const CliRun r = bench_e2e("-d " + path.string() +
                             " --span dense --batch 2 --reps 1 --bucket 64 --per-bucket 2 --format json --kv-dtype f32");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 1u) << r.out;
  EXPECT_EQ(j["rows"][0]["n"], 2);
  EXPECT_NE(j["backend"].get<std::string>().find("F32 KV cache"), std::string::npos) << j["backend"];
}

TEST(E2eCli, TakesThePeersPoliciesWithTheirOptionsInTheList) {
  const nlohmann::json rec = {{"prompt", kPrompt}, {"completion", kCompletion}};
  const auto path = write_dataset("peers", {rec.dump(), rec.dump()});
  const CliRun r = bench_e2e("-d " + path.string() +
                             " --span dense,window:sink=2,recent=16,recycled:k=8,stride=4 --batch 2 --reps 1 --bucket 64");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("| dense |"));
  EXPECT_THAT(r.out, HasSubstr("| window:sink=2,recent=16 |"));
  EXPECT_THAT(r.out, HasSubstr("| recycled:k=8,stride=4 |"));
  const CliRun bad = bench_e2e("-d " + path.string() + " --reps 1 --span dense,window:recent=-4");
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.err, HasSubstr("recent must be in [1,"));
}

TEST(E2eCli, BadInputIsAnErrorNamingTheRecordOrThePolicy) {
  const nlohmann::json good = {{"prompt", kPrompt}, {"completion", kCompletion}};
  const auto no_completion = write_dataset("nocomp", {good.dump(), R"({"prompt": "1 + 1 [0]\n"})"});
  CliRun r = bench_e2e("-d " + no_completion.string() + " --reps 1");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr(no_completion.string() + ":2: the record has no string 'completion'"));

  const auto ok = write_dataset("long", {good.dump()});
  r = bench_e2e("-d " + ok.string() + " --reps 1 --max-context 32");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr(ok.string() + ":1: prompt + completion are"));
  EXPECT_THAT(r.err, HasSubstr("context holds 32"));

  r = bench_e2e("-d " + ok.string() + " --reps 1 --span dense,bogus");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("unknown span policy 'bogus'"));
}

// Every sspan-bench subcommand reads a list as comma-separated values, and a count that must
// be positive is a usage error, not an empty table.
CliRun bench(const std::string& args) { return test::run_command(std::string(SSPAN_BENCH_BIN) + " " + args); }

TEST(BenchCli, ListsAreCommaSeparatedAndCountsPositiveInEverySubcommand) {
  const CliRun ok = bench("span-encode --block-sizes 16,64 --contexts 256,512 --window 4 --reps 1");
  EXPECT_EQ(ok.code, 0) << ok.err;
  const CliRun bad_block = bench("span-encode --block-sizes 16,48 --contexts 256");
  EXPECT_NE(bad_block.code, 0);
  EXPECT_THAT(bad_block.err, HasSubstr("--block-sizes"));
  const std::string model = (test::source_dir() / "models/arith-tiny").string();
  const CliRun zero_clients = bench("serve -m " + model + " --clients 0");
  EXPECT_NE(zero_clients.code, 0);
  EXPECT_THAT(zero_clients.err, HasSubstr("--clients"));
  const CliRun zero_batch = bench("decode -m " + model + " --batch 0");
  EXPECT_NE(zero_batch.code, 0);
  EXPECT_THAT(zero_batch.err, HasSubstr("--batch"));
  const CliRun zero_context = bench("attention --context 0");
  EXPECT_NE(zero_context.code, 0);
  EXPECT_THAT(zero_context.err, HasSubstr("--context"));
}

// sspan-bench attention: the op validated against a float64 reference, and beside it the
// same attended bytes read with no arithmetic, whose cost per key against dense is the
// memory system's own price for a pattern.
TEST(BenchCli, AttentionReportsTheReadOnlyPriceOfEachPattern) {
  const CliRun r = bench("attention --shape 2:2:32:1 --batch 2 --context 300 --pattern dense,alt64 --reps 2 "
                         "--min-cache-mib 1 -t 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("| read-only GB/s | read-only per key vs dense |"));
  std::map<std::string, std::vector<std::string>> rows;  // pattern -> cells
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| dense |", 0) != 0 && line.rfind("| alt64 |", 0) != 0) continue;
    std::vector<std::string> cells;
    std::istringstream cols(line.substr(1));
    for (std::string cell; std::getline(cols, cell, '|');) cells.push_back(cell.substr(1, cell.size() - 2));
    rows[cells[0]] = cells;
  }
  ASSERT_EQ(rows.size(), 2u) << r.out;
  // Position 299: the dense tail from 256, and of the 256 before it the blocks at 0 and 128.
  EXPECT_EQ(rows["alt64"][1], "57.3%");
  EXPECT_EQ(rows["dense"][8], "1.000");  // read-only per key vs dense
  for (const auto& [pattern, cells] : rows) {
    ASSERT_GE(cells.size(), 9u) << pattern;
    EXPECT_GT(std::stod(cells[7]), 0.0) << pattern << ": read-only GB/s";
    EXPECT_GT(std::stod(cells[8]), 0.0) << pattern << ": read-only per key vs dense";
  }
}

// sspan-bench matmul: by default the weights come from memory, as in a forward pass over a
// model larger than the cache; --weights cache reuses one copy. Every shape and row count
// gets a row with a measured figure, also as a share of the FMA peak measured beside it.
TEST(BenchCli, MatmulReadsItsWeightsFromMemoryUnlessToldCache) {
  const std::string shape = "matmul --hidden 64 --intermediate 128 --vocab 256 --rows 1,4 --reps 1 -t 1";
  for (const std::string where : {"memory", "cache"}) {
    const CliRun r = bench(shape + (where == "cache" ? " --weights cache" : ""));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("read from " + where)) << r.out;
    EXPECT_THAT(r.out, HasSubstr("fp32 FMA peak")) << r.out;
    int rows = 0;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.find(" x ") == std::string::npos || line.rfind("| shape", 0) == 0) continue;  // header
      std::vector<std::string> cells;
      std::istringstream cols(line.substr(1));
      for (std::string cell; std::getline(cols, cell, '|');) cells.push_back(cell);
      ASSERT_GE(cells.size(), 8u) << line;
      EXPECT_GT(std::stod(cells[2]), 0.0) << line << ": GFLOP/s";
      EXPECT_GT(std::stod(cells[3]), 0.0) << line << ": % of FMA peak";
      ++rows;
    }
    EXPECT_EQ(rows, 8) << r.out;  // 4 shapes x 2 row counts
  }
  const CliRun bad = bench(shape + " --weights disk");
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.err, HasSubstr("--weights"));
}

// sspan-bench decode --span: the tg test once per policy, each row's span from the policy's
// tracker, with the mean sparsity it attended and the ratio to dense.
TEST(BenchCli, DecodeRunsEachSpanPolicySideBySide) {
  const auto run = [](const std::string& args) {
    return bench("decode -m " + (test::source_dir() / "models/arith-tiny").string() + " -t 1 " + args);
  };
  // 40 prompt tokens + 4 steps: a sink of 2 and a window of 8 attend 10 of 42..45 positions.
  const CliRun r = run("--pp 16 --max-step-rows 8 --prompt-tokens 40 --steps 4 --reps 1 --batch 2 --format json "
                       "--span dense,window:sink=2,recent=8,recycled:k=8,stride=4");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 4u) << r.out;
  EXPECT_EQ(j["rows"][0]["test"], "pp16");
  std::map<std::string, nlohmann::json> tg;
  for (const auto& row : j["rows"])
    if (row["test"] == "tg") tg[row["span"].get<std::string>()] = row;
  ASSERT_EQ(tg.size(), 3u) << r.out;
  EXPECT_EQ(tg["dense"]["mean_sparsity"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(tg["dense"]["vs_dense"].get<double>(), 1.0);
  double window = 0;  // mean of 1 - 10 / (t + 1) over t = 41..44
  for (int t = 41; t <= 44; ++t) window += (1.0 - 10.0 / (t + 1)) / 4;
  EXPECT_NEAR(tg["window:sink=2,recent=8"]["mean_sparsity"].get<double>(), window, 1e-9) << r.out;
  EXPECT_GT(tg["recycled:k=8,stride=4"]["mean_sparsity"].get<double>(), 0.0) << r.out;
  for (auto& [span, row] : tg) EXPECT_GT(row["tokens_per_s"].get<double>(), 0.0) << span;

  const CliRun md = run("--pp 0 --prompt-tokens 8 --steps 2 --reps 1 --batch 1 --span dense,window:recent=4");
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_THAT(md.out, HasSubstr("| tg | window:recent=4 | 1 |"));
  EXPECT_THAT(md.out, HasSubstr("| vs dense |"));

  const CliRun bad = run("--span dense,bogus");
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.err, HasSubstr("unknown span policy 'bogus'"));
}

// Weights without a tokenizer (sspan-random-model --no-tokenizer): the policies that read
// no text run, a grammar is an error that says why.
TEST(BenchCli, DecodeWithoutATokenizerRunsThePoliciesThatReadNoText) {
  const auto weights = test::scratch_dir("bench_decode_weights_only");
  for (const char* f : {"config.json", "model.safetensors"})
    std::filesystem::copy_file(test::source_dir() / "models/arith-tiny" / f, weights / f,
                               std::filesystem::copy_options::overwrite_existing);
  const auto run = [&](const std::string& args) { return bench("decode -m " + weights.string() + " -t 1 " + args); };
  const CliRun ok = run("--pp 8 --prompt-tokens 16 --steps 2 --reps 1 --batch 2 --span dense,window:recent=4");
  EXPECT_EQ(ok.code, 0) << ok.err;
  const CliRun grammar = run("--span dense,arith");
  EXPECT_NE(grammar.code, 0);
  EXPECT_THAT(grammar.err, HasSubstr("--span arith reads the text of the tokens"));
}

}  // namespace
}  // namespace sspan
