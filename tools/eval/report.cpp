#include "eval/report.h"

#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

namespace sspan::eval {

void Tally::add(const Tally& o) {
  n += o.n, correct += o.correct, rouge1 += o.rouge1, rouge2 += o.rouge2, rougeL += o.rougeL,
      rougeLsum += o.rougeLsum, nll += o.nll, tokens += o.tokens, seconds += o.seconds,
      sparsity_sum += o.sparsity_sum, sparse_den += o.sparse_den;
}

std::string bucket_name(int b, int size) {
  return b == kAll ? "all" : fmt::format("{}-{}", int64_t(b) * size, (int64_t(b) + 1) * size);
}

namespace {

double tokens_per_s(const Tally& x) { return x.seconds > 0 ? double(x.tokens) / x.seconds : 0; }
double mean_sparsity(const Tally& x) { return x.sparse_den ? x.sparsity_sum / double(x.sparse_den) : 0; }
// exp of the mean negative log-likelihood of the scored tokens.
double perplexity(const Tally& x) { return x.tokens ? std::exp(x.nll / double(x.tokens)) : 0; }

// Tokens/s of `policy` in bucket b over the dense policy's, when dense ran too.
double ratio_vs_dense(const PolicyTable& t, const std::string& policy, int b) {
  const auto d = t.find("dense");
  if (d == t.end() || !d->second.count(b)) return 0;
  const double x = tokens_per_s(t.at(policy).at(b)), y = tokens_per_s(d->second.at(b));
  return x > 0 && y > 0 ? x / y : 0;
}

// The quality columns' header (csv: comma-separated names; md: " | "-separated titles).
std::string quality_header(Quality q, bool csv) {
  switch (q) {
    case Quality::Accuracy: return csv ? "accuracy" : "accuracy %";
    case Quality::Rouge: return csv ? "rouge1,rouge2,rougeL,rougeLsum" : "R.1 | R.2 | R.L | R.Lsum";
    case Quality::Perplexity: return csv ? "tokens,perplexity" : "tokens | perplexity";
  }
  return "";
}

std::string quality_cells(Quality q, bool csv, const Tally& x) {
  switch (q) {
    case Quality::Accuracy: return fmt::format("{:.1f}", 100.0 * x.correct / x.n);
    case Quality::Rouge: {
      const double s = csv ? 1 : 100;
      return fmt::format(fmt::runtime(csv ? "{:.4f},{:.4f},{:.4f},{:.4f}" : "{:.1f} | {:.1f} | {:.1f} | {:.1f}"),
                         s * x.rouge1 / x.n, s * x.rouge2 / x.n, s * x.rougeL / x.n, s * x.rougeLsum / x.n);
    }
    case Quality::Perplexity:
      return fmt::format(fmt::runtime(csv ? "{},{:.6g}" : "{} | {:.4f}"), x.tokens, perplexity(x));
  }
  return "";
}

int quality_columns(Quality q) { return q == Quality::Rouge ? 4 : q == Quality::Perplexity ? 2 : 1; }

void print_json(const ReportLayout& a, const PolicyTable& t) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [policy, buckets] : t)
    for (const auto& [b, x] : buckets) {
      nlohmann::json row = {{"span", policy},
                            {"bucket", bucket_name(b, a.bucket)},
                            {"n", x.n},
                            {"tokens_per_s", tokens_per_s(x)},
                            {"tokens_per_s_vs_dense", ratio_vs_dense(t, policy, b)},
                            {"mean_sparsity", mean_sparsity(x)}};
      switch (a.quality) {
        case Quality::Accuracy: row["accuracy"] = x.n ? double(x.correct) / x.n : 0; break;
        case Quality::Rouge:
          row["rouge"] = {{"rouge1", x.rouge1 / x.n}, {"rouge2", x.rouge2 / x.n}, {"rougeL", x.rougeL / x.n},
                          {"rougeLsum", x.rougeLsum / x.n}};
          break;
        case Quality::Perplexity:
          row["tokens"] = x.tokens;
          row["nll"] = x.nll;
          row["perplexity"] = perplexity(x);
          break;
      }
      out.push_back(row);
    }
  std::cout << out.dump(2) << "\n";
}

}  // namespace

void print_table(const ReportLayout& a, const PolicyTable& t) {
  if (a.format == "json") return print_json(a, t);
  const bool csv = a.format == "csv";
  if (csv) {
    std::cout << "bucket,span,n," << quality_header(a.quality, true)
              << ",tokens_per_s,tokens_per_s_vs_dense,mean_sparsity\n";
  } else {
    std::string align;
    for (int i = 0; i < quality_columns(a.quality); ++i) align += "---:|";
    std::cout << "| bucket (" << a.bucket_unit << ") | span | n | " << quality_header(a.quality, false)
              << " | tokens/s | vs dense | mean sparsity |\n|---|---|---:|" << align << "---:|---:|---:|\n";
  }
  std::map<int, std::vector<std::pair<std::string, Tally>>> by_bucket;
  for (const auto& [policy, buckets] : t)
    for (const auto& [b, x] : buckets) by_bucket[b].push_back({policy, x});
  for (const auto& [b, rows] : by_bucket) {
    const std::string name = bucket_name(b, a.bucket);
    for (const auto& [policy, x] : rows) {
      const double vs = ratio_vs_dense(t, policy, b);
      const std::string vs_text = vs > 0 ? fmt::format("{:.3f}", vs) : (csv ? "" : "-");
      const std::string q = quality_cells(a.quality, csv, x);
      if (csv)
        std::cout << fmt::format("{},{},{},{},{:.1f},{},{:.4f}\n", name, policy, x.n, q, tokens_per_s(x), vs_text,
                                 mean_sparsity(x));
      else
        std::cout << fmt::format("| {} | {} | {} | {} | {:.1f} | {} | {:.3f} |\n", name, policy, x.n, q,
                                 tokens_per_s(x), vs_text, mean_sparsity(x));
    }
  }
}

}  // namespace sspan::eval
