#pragma once
// A stream of random arith records, optionally filtered by tokenized completion length.
// Record i is a pure function of (seed, i); candidates are made in parallel batches and
// kept in index order, so the output is byte-identical for any thread count.
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>

#include "arith.h"

namespace sspan::data {

struct ArithStreamOptions {
  ArithOptions arith;
  int64_t count = 1000;
  uint64_t seed = 0;
  std::string tokenizer;  // tokenizer.model; required by the token-length filter
  int64_t min_tokens = 0;
  int64_t max_tokens = 0;  // 0: no upper bound
  int threads = 0;         // 0: the CPU ops' default (cpu::num_threads())
  // Prompts never to write (e.g. a training set's), so that a test set is held out.
  std::unordered_set<std::string> exclude_prompts;
};

// The prompts of a JSONL file of records (for --exclude); errors name the file and line.
std::unordered_set<std::string> read_prompts(const std::string& jsonl_path);

// Calls `emit` with opt.count records in order. Throws sspan::Error for bad options.
void write_arith_stream(const ArithStreamOptions& opt,
                        const std::function<void(const ArithRecord&)>& emit);

}  // namespace sspan::data
