// sspan-datagen: dataset generators for span-annotated tasks.
//   sspan-datagen arith   --count N --seed S [-o FILE]   random expressions + traces
//   sspan-datagen arith   --expr "(42 * 56) + (5 * 32)"  the trace of one expression
//   sspan-datagen arith   --layout lines ...             a chain, one operation per line
//   sspan-datagen summary -i articles.jsonl [-o FILE]     Figure 7 summary records
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "arith.h"
#include "arith_stream.h"
#include "common/check.h"
#include "summary.h"

namespace {

// stdout or a file, failing with the path in the message.
class Output {
 public:
  explicit Output(const std::string& path) {
    if (path.empty() || path == "-") return;
    file_ = std::make_unique<std::ofstream>(path, std::ios::binary);
    SSPAN_CHECK(file_->good(), "cannot open output file '{}'", path);
    path_ = path;
  }
  std::ostream& stream() { return file_ ? *file_ : std::cout; }
  void close() {
    stream().flush();
    SSPAN_CHECK(stream().good(), "writing '{}' failed", path_.empty() ? "stdout" : path_);
  }

 private:
  std::unique_ptr<std::ofstream> file_;
  std::string path_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sspan-datagen: span-annotated task datasets (docs/datasets.md)"};
  app.require_subcommand(1);

  sspan::data::ArithStreamOptions arith;
  std::string expr, arith_out;
  auto* cmd_arith = app.add_subcommand("arith", "arithmetic expressions with solution traces");
  cmd_arith->add_option("--count", arith.count, "records to write")->check(CLI::Range(int64_t(0), int64_t(1000000000000)));
  cmd_arith->add_option("--seed", arith.seed, "random seed");
  cmd_arith->add_option("--depth-mean", arith.arith.depth_mean, "mean expression depth");
  cmd_arith->add_option("--depth-sd", arith.arith.depth_sd, "sd of the expression depth")
      ->check(CLI::Range(0.0, 1.0e6));
  cmd_arith->add_option("--digits-mean", arith.arith.digits_mean, "mean digits per number");
  cmd_arith->add_option("--digits-sd", arith.arith.digits_sd, "sd of the digits per number")
      ->check(CLI::Range(0.0, 1.0e6));
  std::vector<int> op_weights;
  cmd_arith->add_option("--op-weights", op_weights, "relative weights of + - * / (default 1,1,1,1)")
      ->delimiter(',')->expected(4);
  std::vector<int64_t> literals, results;
  cmd_arith->add_option("--literals", literals, "LO,HI: every literal uniform in [LO, HI] (replaces the digits draw)")
      ->delimiter(',')->expected(2);
  cmd_arith->add_option("--results", results, "LO,HI: every operation result lies in [LO, HI]")
      ->delimiter(',')->expected(2);
  cmd_arith->add_option("--side-depth-max", arith.arith.side_depth_max,
                        "most depth of an operation's shallower operand (-1: no limit, 0: a chain)");
  cmd_arith->add_option("--deep-left", arith.arith.deep_left,
                        "probability that the deeper operand is the left one (default 0.5)");
  std::string layout = "expression";
  cmd_arith->add_option("--layout", layout,
                        "expression (the paper's one-line prompt) or lines (a left chain, one operation per line)")
      ->check(CLI::IsMember({"expression", "lines"}));
  cmd_arith->add_option("--tokenizer", arith.tokenizer,
                        "tokenizer.model used by --min-tokens/--max-tokens");
  cmd_arith->add_option("--min-tokens", arith.min_tokens, "keep completions of at least N tokens")
      ->check(CLI::Range(int64_t(0), int64_t(1000000000)));
  cmd_arith->add_option("--max-tokens", arith.max_tokens, "keep completions of at most N tokens")
      ->check(CLI::Range(int64_t(0), int64_t(1000000000)));
  cmd_arith->add_option("--threads", arith.threads, "worker threads (output does not depend on it)")
      ->check(CLI::PositiveNumber);
  cmd_arith->add_option("--expr", expr, "write the record of this one expression");
  std::string exclude;
  cmd_arith->add_option("--exclude", exclude, "skip expressions whose prompt appears in this JSONL (held-out sets)");
  cmd_arith->add_option("-o,--output", arith_out, "output JSONL (default stdout)");

  std::string summary_in, summary_out;
  auto* cmd_summary = app.add_subcommand("summary", "Figure 7 records from {article, summary} JSONL");
  cmd_summary->add_option("-i,--input", summary_in, "input JSONL")->required();
  cmd_summary->add_option("-o,--output", summary_out, "output JSONL (default stdout)");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*cmd_arith) {
      if (layout == "lines") arith.arith.layout = sspan::data::ArithLayout::lines;
      if (!op_weights.empty()) std::copy(op_weights.begin(), op_weights.end(), arith.arith.op_weights.begin());
      if (!literals.empty()) arith.arith.literals = {literals[0], literals[1]};
      if (!results.empty()) arith.arith.results = {results[0], results[1]};
      Output out(arith_out);
      if (!expr.empty()) {
        out.stream() << sspan::data::to_jsonl(sspan::data::arith_record_for(expr, arith.arith.layout)) << '\n';
      } else {
        if (!exclude.empty()) arith.exclude_prompts = sspan::data::read_prompts(exclude);
        sspan::data::write_arith_stream(arith, [&](const sspan::data::ArithRecord& r) {
          out.stream() << sspan::data::to_jsonl(r) << '\n';
        });
      }
      out.close();
    } else if (*cmd_summary) {
      std::ifstream in(summary_in, std::ios::binary);
      SSPAN_CHECK(in.good(), "cannot open input file '{}'", summary_in);
      Output out(summary_out);
      sspan::data::convert_summaries(in, summary_in, out.stream());
      out.close();
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "sspan-datagen: {}\n", e.what());
    return 1;
  }
  return 0;
}
