// span-encode: host cost per request per decode step of the span rule (SpanState::push)
// plus the blocked encoding of the step (SpanState::append_last into the batch's
// SpanBatch), at a given context length, for an arith-like and a summary-like text.
// Steps where a line's reference list resolves (and its block list is derived) are
// reported apart from steps inside a line (which only append the cached blocks).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "bench.h"
#include "common/check.h"
#include "sspan/span.h"

namespace sspan::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Splits text into token texts shaped like LLaMA pieces: digits alone, a word with its
// leading space, other characters alone, a newline alone.
void append_tokens(std::string_view text, std::vector<std::string>& out) {
  auto is_alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    if (text[j] == ' ') ++j;
    if (j < text.size() && is_alpha(text[j])) {
      while (j < text.size() && is_alpha(text[j])) ++j;
    } else if (j == i) {
      ++j;
    }
    out.emplace_back(text.substr(i, j - i));
    i = j;
  }
}

struct BenchText {
  std::vector<std::string> tokens;  // token texts, BOS not included
  size_t n_prompt = 0;              // leading tokens that are prompt
};

// Arithmetic in the paper's Figure 5 style: a task line with anchor [0], then steps that
// reference the previous line and earlier anchors, each finished result anchored.
BenchText arith_text(int32_t n_tokens, std::mt19937& rng) {
  BenchText out;
  append_tokens("(42 * 56) + (5 * 32) - (17 * 3) + (8 * 91) [0]\n", out.tokens);
  out.n_prompt = out.tokens.size() + 1;
  std::uniform_int_distribution<int> num(10, 999);
  int anchors = 1;
  while (int32_t(out.tokens.size()) < n_tokens) {
    const int a = num(rng), b = num(rng);
    // a step from the previous line, its summary with a new anchor, then a combination
    append_tokens(fmt::format("[-1] {} * {}={} * ({} + {})={}\n", a, b, a, b / 10 * 10, b % 10, a * b),
                  out.tokens);
    append_tokens(fmt::format("[-1] So {} * {}={} [{}]\n", a, b, a * b, anchors), out.tokens);
    ++anchors;
    std::uniform_int_distribution<int> pick(0, anchors - 1);
    const int r1 = pick(rng), r2 = pick(rng);
    append_tokens(fmt::format("[0,{},{}] {} + {}={} [{}]\n", std::min(r1, r2), std::max(r1, r2), a,
                              b, a + b, anchors),
                  out.tokens);
    ++anchors;
  }
  out.tokens.resize(size_t(n_tokens));
  return out;
}

// Summarization in the paper's Figure 7 style: an instruction, numbered article sentences
// (the prompt, about 85% of the context), then summary sentences naming line ranges.
BenchText summary_text(int32_t n_tokens, std::mt19937& rng) {
  static const char* kWords[] = {"the", "council", "approved", "a", "new", "park", "on",
                                 "Monday", "residents", "said", "construction", "will",
                                 "begin", "in", "spring", "and", "include", "pond"};
  std::uniform_int_distribution<int> word(0, int(std::size(kWords)) - 1), len(12, 30);
  auto sentence = [&] {
    std::string s;
    for (int w = len(rng); w > 0; --w) s += fmt::format(" {}", kWords[word(rng)]);
    return s + " .";
  };
  BenchText out;
  append_tokens("Summarize the following article in three sentences and precede each with the "
                "range of line numbers in parentheses.\n",
                out.tokens);
  int lines = 0;
  const int32_t article_tokens = n_tokens - n_tokens / 7;
  while (int32_t(out.tokens.size()) < article_tokens) {
    append_tokens(fmt::format("{} :{}\n", lines, sentence()), out.tokens);
    ++lines;
  }
  out.n_prompt = out.tokens.size() + 1;
  std::uniform_int_distribution<int> first(0, lines - 1), span(0, 8);
  while (int32_t(out.tokens.size()) < n_tokens) {
    const int a = first(rng), b = std::min(lines - 1, a + span(rng));
    append_tokens(fmt::format("({}-{}){}\n", a, b, sentence()), out.tokens);
  }
  out.tokens.resize(size_t(n_tokens));
  return out;
}

struct Options {
  std::vector<int32_t> contexts{2048, 16384};
  std::vector<int> block_sizes{16, 32, 64, 128, 256};
  int batch = 24;          // requests stepped together
  int32_t window = 1024;   // timed decode steps, ending at the context length
  int reps = 5;            // repetitions; the fastest is reported
  uint32_t seed = 7;
};

struct Result {
  double us_per_step = 0;     // whole batch steps timed, per request-step (best rep)
  double us_inline = 0;       // steps inside a line: cached blocks appended
  double us_resolve = 0;      // steps where a line's list resolved: block list derived
  int32_t window = 0;         // timed decode steps per request
  int64_t n_steps = 0;
  int64_t n_resolve = 0;
  double blocks_per_row = 0;  // mean blocks listed per row
  double sparsity = 0;        // mean 1 - |S_t| / (t + 1)
};

int64_t lines_decided(const SpanEvents& e) { return e.sparse_lines + e.dense_fallbacks; }

double elapsed_ns(Clock::time_point a, Clock::time_point b) {
  return double(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// Cost of one Clock::now() pair, subtracted from per-step timings.
double timer_overhead_ns() {
  constexpr int kPairs = 100000;
  const auto t0 = Clock::now();
  for (int i = 0; i < kPairs; ++i) {
    const auto a = Clock::now();
    const auto b = Clock::now();
    if (b < a) std::abort();  // keeps the pair from being optimised away
  }
  return elapsed_ns(t0, Clock::now()) / kPairs;
}

// Each request pushes BOS and its text up to `context - window` untimed (the prefill).
std::vector<SpanState> prefill(const std::vector<BenchText>& texts,
                               const std::shared_ptr<const SpanGrammar>& g, int block_size,
                               int32_t first_timed) {
  std::vector<SpanState> states;
  for (const auto& text : texts) {
    SpanState& s = states.emplace_back(g, block_size);
    s.push("", true);
    for (int32_t i = 0; i < first_timed; ++i)
      s.push(text.tokens[size_t(i)], size_t(i) + 1 < text.n_prompt);
  }
  return states;
}

// Time split of one repetition: batch steps in which no request resolved a line, and
// the others with how many request-steps of each kind they held.
struct Split {
  double total_ns = 0;
  double plain_ns = 0;        // steps without a resolving request
  int64_t plain_rows = 0;
  double mixed_ns = 0;        // steps with at least one
  int64_t mixed_inline_rows = 0;
  int64_t mixed_resolve_rows = 0;
};

// The batch takes `window` decode steps: per request, push the token and append its
// row to the step's SpanBatch; each batch step is timed as a whole (one clock pair per
// step, its cost subtracted). In-line and resolve costs come from splitting the steps:
// steps where no request resolved a line give the in-line cost per row; the remaining
// time of the other steps, less their in-line rows, divided by their resolving rows,
// gives the resolve cost. The first step's batch is validated against the states.
Result run(const std::vector<BenchText>& texts, const SpanGrammar& grammar, int block_size,
           const Options& opt, int32_t context, double timer_ns) {
  const auto g = std::make_shared<const SpanGrammar>(grammar);
  // Only generated tokens are decode steps: the window ends at the context length and
  // starts no earlier than the end of the longest prompt.
  size_t longest_prompt = 0;
  for (const auto& text : texts) longest_prompt = std::max(longest_prompt, text.n_prompt);
  const int32_t first_timed = std::max(context - opt.window, int32_t(longest_prompt) - 1);
  Result res;
  res.window = context - first_timed;
  res.n_steps = int64_t(res.window) * int64_t(texts.size());

  Split best;
  for (int rep = 0; rep < opt.reps; ++rep) {
    auto states = prefill(texts, g, block_size, first_timed);
    std::vector<int64_t> decided(states.size());
    SpanBatch batch;
    Split split;
    int64_t blocks = 0, n_resolve = 0;
    double sparsity = 0;
    for (int32_t i = first_timed; i < context; ++i) {
      for (size_t r = 0; r < states.size(); ++r) decided[r] = lines_decided(states[r].events());
      batch.reset(block_size);
      const auto t0 = Clock::now();
      for (size_t r = 0; r < states.size(); ++r) {
        states[r].push(texts[r].tokens[size_t(i)], false);
        states[r].append_last(batch);
      }
      const double ns = std::max(0.0, elapsed_ns(t0, Clock::now()) - timer_ns);
      if (i == first_timed) {
        for (int r = 0; r < batch.rows(); ++r)
          SSPAN_CHECK(batch.row_ranges(r) == states[size_t(r)].last_attended() &&
                          batch.row_count(r) == states[size_t(r)].last_count(),
                      "span-encode: row {} of the blocked encoding does not decode to its span", r);
      }
      int64_t resolving = 0;
      for (size_t r = 0; r < states.size(); ++r) {
        resolving += lines_decided(states[r].events()) != decided[r];
        sparsity += states[r].last_sparsity();
      }
      split.total_ns += ns;
      if (resolving == 0) {
        split.plain_ns += ns;
        split.plain_rows += int64_t(states.size());
      } else {
        split.mixed_ns += ns;
        split.mixed_resolve_rows += resolving;
        split.mixed_inline_rows += int64_t(states.size()) - resolving;
      }
      n_resolve += resolving;
      blocks += batch.indptr.back();
    }
    if (rep == 0 || split.total_ns < best.total_ns) best = split;
    res.n_resolve = n_resolve;
    res.blocks_per_row = double(blocks) / double(res.n_steps);
    res.sparsity = sparsity / double(res.n_steps);
  }
  res.us_per_step = best.total_ns / 1e3 / double(res.n_steps);
  const double inline_ns = best.plain_rows ? best.plain_ns / double(best.plain_rows) : 0.0;
  res.us_inline = inline_ns / 1e3;
  if (best.mixed_resolve_rows) {
    const double resolve_ns =
        (best.mixed_ns - inline_ns * double(best.mixed_inline_rows)) / double(best.mixed_resolve_rows);
    res.us_resolve = std::max(0.0, resolve_ns) / 1e3;
  }
  return res;
}

void run_all(const Options& opt) {
  SSPAN_CHECK(opt.batch > 0, "span-encode: --batch must be positive, got {}", opt.batch);
  for (int b : opt.block_sizes)
    SSPAN_CHECK(valid_block_size(b), "span-encode: --block-sizes: {} is not one of 16, 32, 64, 128, 256", b);
  SSPAN_CHECK(opt.reps > 0, "span-encode: --reps must be positive, got {}", opt.reps);
  for (int32_t c : opt.contexts)
    SSPAN_CHECK(c > opt.window && opt.window > 0,
                "span-encode: context {} must exceed the timed window {} (> 0)", c, opt.window);

  const double timer_ns = timer_overhead_ns();
  fmt::print("## span-encode: span state + blocked encoding, per request per decode step\n\n");
  fmt::print("{}\n", build_description());
  fmt::print("batch {} requests, up to {} timed decode steps (generated tokens) ending at the "
             "context length, best of {} reps. "
             "each batch step timed as a whole (timer cost {:.0f} ns subtracted). `in-line`: rows "
             "inside a line (cached blocks appended); `resolve`: rows whose line's list resolved "
             "and whose block list was derived (n per rep)\n\n",
             opt.batch, opt.window, opt.reps, timer_ns);
  fmt::print("| text | context | steps | B | µs/step | µs in-line | µs resolve (n) | blocks/row | sparsity |\n");
  fmt::print("|------|--------:|------:|--:|--------:|-----------:|---------------:|-----------:|---------:|\n");
  struct Kind {
    const char* name;
    BenchText (*make)(int32_t, std::mt19937&);
  };
  for (const Kind kind : {Kind{"arith", arith_text}, Kind{"summary", summary_text}}) {
    const SpanGrammar grammar = SpanGrammar::builtin(kind.name);
    for (int32_t context : opt.contexts) {
      std::mt19937 rng(opt.seed);
      std::vector<BenchText> texts;
      for (int r = 0; r < opt.batch; ++r) texts.push_back(kind.make(context, rng));
      for (int b : opt.block_sizes) {
        const Result res = run(texts, grammar, b, opt, context, timer_ns);
        fmt::print("| {} | {} | {} | {} | {:.3f} | {:.3f} | {:.3f} ({}) | {:.1f} | {:.3f} |\n",
                   kind.name, context, res.window, b, res.us_per_step, res.us_inline, res.us_resolve, res.n_resolve,
                   res.blocks_per_row, res.sparsity);
      }
    }
  }
}

}  // namespace

void add_span_bench(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "span-encode", "Host cost of the span rule and blocked encoding per request per decode step");
  cmd->add_option("--contexts", opt->contexts, "Context lengths (tokens) at which steps are timed")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--block-sizes", opt->block_sizes, "Block sizes B to sweep (16..256)")
      ->delimiter(',')
      ->check(CLI::IsMember({16, 32, 64, 128, 256}))
      ->capture_default_str();
  cmd->add_option("--batch", opt->batch, "Requests stepped together")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--window", opt->window, "Timed decode steps ending at each context length")
      ->capture_default_str();
  cmd->add_option("--reps", opt->reps, "Repetitions; the fastest is reported")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Seed of the generated texts")->capture_default_str();
  cmd->callback([opt] { run_all(*opt); });
}

}  // namespace sspan::bench
