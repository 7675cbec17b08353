// sspan-eval --score: the perplexity of a text under span policies. Under `dense` it
// equals an independent float64 forward over each whole chunk (log-softmax in float64),
// bucket by bucket; a window that covers everything equals dense; a window that drops
// keys gives another finite value; bad inputs are clear errors with a non-zero exit.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checkpoint_writer/checkpoint_writer.h"
#include "sspan/checkpoint.h"
#include "sspan/config.h"
#include "sspan/tokenizer.h"
#include "support/reference_llama.h"
#include "support/test_paths.h"
#include "support/tool_run.h"

namespace sspan {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

// An arith-like text of about 150 tokens under the project's tokenizer.
const char* kText =
    "(42 * 56) + (5 * 32) [0]\n[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n[-1] So 42 * 56=2352 [1]\n"
    "[0,1] 5 * 32=160 [2]\n[0,1,2] 2512\n(7 - 3) * 9 [0]\n[-1] 7 - 3=4 [1]\n[0,1] 4 * 9=36\n";

// Totals of one bucket.
struct Expected {
  int64_t tokens = 0;
  double nll = 0;
};

class EvalScore : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_path_ = test::project_tokenizer_path();
    TinyLlamaSpec spec;
    spec.vocab_size = 300;  // the project's tokenizer
    spec.hidden_size = 64;
    spec.num_kv_heads = 2;
    model_ = write_tiny_llama(test::scratch_dir("model"), spec);
    text_ = model_ / "text.txt";
    std::ofstream(text_) << kText;
  }

  test::ToolRun eval(const std::string& args) const {
    return test::run_command(std::string(SSPAN_EVAL_BIN) + " -m " + model_.string() + " --tokenizer " +
                             tok_path_.string() + " -t 2 " + args);
  }

  // Rows of a --format json run: span -> bucket -> row.
  static std::map<std::string, std::map<std::string, json>> rows_of(const std::string& out) {
    std::map<std::string, std::map<std::string, json>> rows;
    for (const json& r : json::parse(out)) rows[r["span"]][r["bucket"]] = r;
    return rows;
  }

  // The reference: the text tokenized whole, cut into chunks of BOS + (chunk - 1) ids;
  // each chunk's logits from the float64 forward over all its positions with a causal
  // mask; token p of a chunk (p >= prefix + 1: predicted by a decode step) scores
  // log_softmax(logits[p - 1])[id_p], in its bucket p / bucket and in "all".
  std::map<std::string, Expected> reference(int chunk, int prefix, int bucket) const {
    const Tokenizer tok = Tokenizer::load(tok_path_);
    const std::vector<int> ids = tok.encode(kText, false);
    const ModelConfig cfg = ModelConfig::from_file(model_ / "config.json");
    const Checkpoint ckpt = Checkpoint::open(model_);
    std::map<std::string, Expected> out;
    for (size_t at = 0; at < ids.size(); at += size_t(chunk - 1)) {
      std::vector<int32_t> c{int32_t(tok.bos_id())};
      for (size_t i = at; i < std::min(ids.size(), at + size_t(chunk - 1)); ++i) c.push_back(ids[i]);
      if (int(c.size()) < prefix + 2) continue;
      const auto logits = test::reference_logits(cfg, ckpt, c);  // [L][V]
      for (int p = prefix + 1; p < int(c.size()); ++p) {
        const std::vector<double>& row = logits[size_t(p - 1)];
        const double mx = *std::max_element(row.begin(), row.end());
        double sum = 0;
        for (double v : row) sum += std::exp(v - mx);
        const double logprob = row[size_t(c[size_t(p)])] - mx - std::log(sum);
        for (const std::string& b : {fmt::format("{}-{}", p / bucket * bucket, (p / bucket + 1) * bucket),
                                     std::string("all")}) {
          out[b].tokens += 1;
          out[b].nll -= logprob;
        }
      }
    }
    return out;
  }

  std::filesystem::path tok_path_, model_, text_;
};

TEST_F(EvalScore, DenseEqualsAFloat64ForwardOverEachChunk) {
  for (const int prefix : {1, 4}) {
    const int chunk = 48, bucket = 16;
    const auto r = eval(fmt::format("--score {} --span dense --chunk {} --prefix {} --bucket {} --batch 2 "
                                    "--format json",
                                    text_.string(), chunk, prefix, bucket));
    ASSERT_EQ(r.code, 0) << r.err;
    const auto rows = rows_of(r.out).at("dense");
    const auto ref = reference(chunk, prefix, bucket);
    ASSERT_EQ(rows.size(), ref.size()) << r.out;
    ASSERT_GT(ref.at("all").tokens, 100);
    for (const auto& [b, want] : ref) {
      SCOPED_TRACE("prefix " + std::to_string(prefix) + ", bucket " + b);
      const json& row = rows.at(b);
      EXPECT_EQ(row["tokens"], want.tokens);
      // fp32 engine against the float64 forward: the mean NLL within 1e-6 nats, so the
      // perplexity within a relative 1e-6 (measured: about 2e-8).
      EXPECT_NEAR(double(row["nll"]) / want.tokens, want.nll / double(want.tokens), 1e-6);
      EXPECT_NEAR(std::log(double(row["perplexity"])), want.nll / double(want.tokens), 1e-6);
      EXPECT_EQ(row["mean_sparsity"], 0.0);
      EXPECT_GT(double(row["tokens_per_s"]), 0.0);
    }
  }
}

TEST_F(EvalScore, AWindowOverEverythingIsDenseAndAShortOneIsNot) {
  const auto r = eval("--score " + text_.string() +
                      " --span dense,window:sink=1,recent=512,window:sink=1,recent=4,recycled:k=8,stride=4,arith"
                      " --chunk 64 --bucket 32 --batch 3 --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto rows = rows_of(r.out);
  ASSERT_EQ(rows.size(), 5u) << r.out;
  for (const auto& [b, dense] : rows.at("dense")) {
    SCOPED_TRACE("bucket " + b);
    const json& wide = rows.at("window:sink=1,recent=512").at(b);
    EXPECT_EQ(wide["tokens"], dense["tokens"]);
    EXPECT_NEAR(double(wide["nll"]), double(dense["nll"]), 1e-9 * double(dense["nll"]));
    EXPECT_EQ(wide["mean_sparsity"], 0.0);
  }
  const double dense_ppl = rows.at("dense").at("all")["perplexity"];
  for (const char* policy : {"window:sink=1,recent=4", "recycled:k=8,stride=4", "arith"}) {
    SCOPED_TRACE(policy);
    const json& all = rows.at(policy).at("all");
    const double ppl = all["perplexity"];
    EXPECT_TRUE(std::isfinite(ppl));
    EXPECT_GT(ppl, 1.0);
    EXPECT_EQ(all["tokens"], rows.at("dense").at("all")["tokens"]);
    EXPECT_GT(double(all["mean_sparsity"]), 0.01);  // it did drop keys
    EXPECT_GT(std::abs(std::log(ppl / dense_ppl)), 1e-4) << ppl << " vs dense " << dense_ppl;
  }
  // The first bucket's window holds every key of its first positions: sparsity grows with them.
  const json& early = rows.at("window:sink=1,recent=4").at("0-32");
  const json& late = rows.at("window:sink=1,recent=4").at("32-64");
  EXPECT_LT(double(early["mean_sparsity"]), double(late["mean_sparsity"]));
}

TEST_F(EvalScore, MarkdownAndCsvHaveThePerplexityColumns) {
  const std::string args = "--score " + text_.string() + " --span dense,window:sink=1,recent=8 --chunk 64 --bucket 32";
  const auto md = eval(args);
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_THAT(md.out, HasSubstr("| bucket (position in chunk) | span | n | tokens | perplexity | tokens/s |"));
  EXPECT_THAT(md.out, HasSubstr("| all | window:sink=1,recent=8 |"));
  EXPECT_THAT(md.out, HasSubstr("chunks of up to 64, prefix 1"));
  const auto csv = eval(args + " --format csv");
  ASSERT_EQ(csv.code, 0) << csv.err;
  EXPECT_THAT(csv.out, ::testing::StartsWith("bucket,span,n,tokens,perplexity,tokens_per_s,tokens_per_s_vs_dense,"
                                             "mean_sparsity\n"));
}

TEST_F(EvalScore, BadInputsAreClearErrors) {
  const auto dir = test::scratch_dir("bad");
  std::ofstream(dir / "empty.txt");
  std::ofstream(dir / "one.txt") << "7";
  std::ofstream(dir / "latin1.txt") << "caf\xe9 au lait";
  std::ofstream(dir / "data.jsonl") << R"({"prompt": "(2 + 3) [0]\n", "completion": "[-1] 5\n"})" << "\n";
  const std::string t = text_.string();
  const std::pair<std::string, std::string> cases[] = {
      {"--score " + (dir / "missing.txt").string(), "cannot read text file"},
      {"--score " + dir.string(), "text file '" + dir.string() + "'"},
      {"--score " + (dir / "empty.txt").string(), "is empty"},
      {"--score " + (dir / "one.txt").string(), "is 1 token; perplexity needs at least 2"},
      {"--score " + (dir / "latin1.txt").string(), "is not valid UTF-8"},
      {"--score " + t + " -d " + (dir / "data.jsonl").string(), "--data and --score are two modes"},
      {"--span dense", "give a JSONL test set (--data FILE) or a text to score (--score FILE)"},
      {"--score " + t + " --task summary", "--task applies to --data only"},
      {"--score " + t + " -n 5", "--n-predict applies to --data only"},
      {"-d " + (dir / "data.jsonl").string() + " --chunk 64", "--chunk applies to --score only"},
      {"--score " + t + " --chunk 2", "must hold the prefix (1) and at least 2 more tokens"},
      {"--score " + t + " --chunk 8 --prefix 7", "must hold the prefix (7)"},
      {"--score " + t + " --chunk 64 --max-context 32", "--chunk 64 is longer than the context of 32 tokens"},
      {"--score " + t + " --span window:recnt=4", "recnt"},
  };
  for (const auto& [args, message] : cases) {
    const auto r = eval(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(message)) << args;
    EXPECT_TRUE(r.out.empty()) << args;
  }
}

}  // namespace
}  // namespace sspan
