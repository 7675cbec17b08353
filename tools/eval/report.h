#pragma once
// sspan-eval's table: per (span policy, length bucket) totals, printed as markdown, CSV or
// JSON. The quality column is the mode's: accuracy (arith), ROUGE (summary) or
// perplexity (--score).
#include <climits>
#include <cstdint>
#include <map>
#include <string>

namespace sspan::eval {

// Totals of one (policy, bucket).
struct Tally {
  int n = 0;                       // records (--score: chunks that reach the bucket)
  int correct = 0;                 // arith
  double rouge1 = 0, rouge2 = 0, rougeL = 0, rougeLsum = 0;  // summary: sums over records
  double nll = 0;                  // --score: sum of -log p(token) over the scored tokens (nats)
  int64_t tokens = 0;              // generated (--score: scored) tokens
  int64_t sparse_den = 0;          // positions whose sparsity is summed
  double seconds = 0, sparsity_sum = 0;
  void add(const Tally& o);
};

// bucket -> totals; the bucket kAll holds every record.
constexpr int kAll = INT_MAX;
using PolicyTable = std::map<std::string, std::map<int, Tally>>;  // policy -> bucket -> totals

enum class Quality { Accuracy, Rouge, Perplexity };

struct ReportLayout {
  Quality quality = Quality::Accuracy;
  std::string format = "md";  // md, csv or json
  int bucket = 256;           // bucket size
  std::string bucket_unit;    // what the bucket counts, for the markdown header
};

std::string bucket_name(int b, int size);  // "0-256", or "all" for kAll

void print_table(const ReportLayout& layout, const PolicyTable& table);

}  // namespace sspan::eval
