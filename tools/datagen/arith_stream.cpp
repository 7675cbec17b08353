#include "arith_stream.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "common/check.h"
#include "cpu/thread_pool.h"
#include "sspan/tokenizer.h"

namespace sspan::data {
namespace {

constexpr int64_t kBatch = 1024;  // candidates generated per parallel round
// Give up when the length filter keeps almost nothing (the options cannot be met).
constexpr int64_t kMaxCandidatesPerRecord = 10000;

}  // namespace

std::unordered_set<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SSPAN_CHECK(in.good(), "cannot open '{}'", path);
  std::unordered_set<std::string> prompts;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    SSPAN_CHECK(j.is_object() && j.contains("prompt") && j["prompt"].is_string(),
                "{} line {}: expected a record with a string 'prompt'", path, n);
    prompts.insert(j["prompt"].get<std::string>());
  }
  return prompts;
}

void write_arith_stream(const ArithStreamOptions& opt,
                        const std::function<void(const ArithRecord&)>& emit) {
  SSPAN_CHECK(opt.count >= 0, "--count must be >= 0, got {}", opt.count);
  SSPAN_CHECK(opt.arith.depth_sd >= 0 && opt.arith.digits_sd >= 0,
              "--depth-sd and --digits-sd must be >= 0");
  SSPAN_CHECK(opt.min_tokens >= 0 && opt.max_tokens >= 0, "--min-tokens/--max-tokens must be >= 0");
  SSPAN_CHECK(opt.max_tokens == 0 || opt.min_tokens <= opt.max_tokens,
              "--min-tokens {} is above --max-tokens {}", opt.min_tokens, opt.max_tokens);
  const bool filter = opt.min_tokens > 0 || opt.max_tokens > 0;
  SSPAN_CHECK(!filter || !opt.tokenizer.empty(), "--min-tokens/--max-tokens need --tokenizer");
  std::optional<Tokenizer> tok;
  if (filter) tok.emplace(Tokenizer::load(opt.tokenizer));

  std::vector<ArithRecord> batch(kBatch);
  std::vector<char> keep(kBatch);  // [kBatch] 1: the record passes the length filter
  int64_t written = 0;
  for (uint64_t first = 0; written < opt.count; first += kBatch) {
    SSPAN_CHECK(int64_t(first) <= (written + 1) * kMaxCandidatesPerRecord,
                "only {} of {} arith records fit --min-tokens {} --max-tokens {} after {} candidates",
                written, opt.count, opt.min_tokens, opt.max_tokens, first);
    cpu::parallel_for(
        kBatch,
        [&](int64_t k, int) {
          ArithRecord& r = batch[size_t(k)];
          r = random_arith_record(opt.seed, first + uint64_t(k), opt.arith);
          keep[size_t(k)] = !opt.exclude_prompts.contains(r.prompt);
          if (filter && keep[size_t(k)]) {
            // the completion is generated after the prompt: count it as a continuation
            const int64_t n = int64_t(tok->encode_continuation(r.completion).size());
            keep[size_t(k)] = n >= opt.min_tokens && (opt.max_tokens == 0 || n <= opt.max_tokens);
          }
        },
        opt.threads);
    for (int64_t k = 0; k < kBatch && written < opt.count; ++k)
      if (keep[size_t(k)]) {
        emit(batch[size_t(k)]);
        ++written;
      }
  }
}

}  // namespace sspan::data
