// SpanPolicy::parse: the one place a span policy string becomes a policy.
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "common/check.h"
#include "span/policy_options.h"
#include "sspan/span.h"

namespace sspan {
namespace span_detail {

PolicyOptions::PolicyOptions(std::string_view spec, std::string_view text) : spec_(spec) {
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    const size_t eq = item.find('=');
    SSPAN_CHECK(eq != std::string_view::npos && eq > 0 && eq + 1 < item.size(),
                "span policy '{}': option '{}' is not key=value", spec, item);
    const auto [it, fresh] = values_.emplace(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
    SSPAN_CHECK(fresh, "span policy '{}': option '{}' given twice", spec, it->first);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
    SSPAN_CHECK(!text.empty(), "span policy '{}': empty option after ','", spec);
  }
}

std::optional<int64_t> PolicyOptions::take_int(std::string_view key, int64_t lo, int64_t hi) {
  const auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  const std::string v = it->second;
  values_.erase(it);
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  SSPAN_CHECK(ec == std::errc() && end == v.data() + v.size(), "span policy '{}': {} must be an integer, got '{}'",
              spec_, key, v);
  SSPAN_CHECK(x >= lo && x <= hi, "span policy '{}': {} must be in [{}, {}], got {}", spec_, key, lo, hi, x);
  return x;
}

std::optional<double> PolicyOptions::take_real(std::string_view key, double lo, double hi) {
  const auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  const std::string v = it->second;
  values_.erase(it);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  SSPAN_CHECK(end == v.c_str() + v.size() && std::isfinite(x), "span policy '{}': {} must be a number, got '{}'",
              spec_, key, v);
  SSPAN_CHECK(x >= lo && x <= hi, "span policy '{}': {} must be in [{}, {}], got {}", spec_, key, lo, hi, x);
  return x;
}

void PolicyOptions::expect_none_left(std::string_view name, std::string_view takes) const {
  if (values_.empty()) return;
  const std::string& key = values_.begin()->first;
  SSPAN_CHECK(key != "grammar", "span policy '{}': '{}' combines with no grammar (use the grammar's own policy)",
              spec_, name);
  SSPAN_FAIL("span policy '{}': unknown option '{}' (policy '{}' takes {})", spec_, key, name, takes);
}

}  // namespace span_detail

namespace {

using span_detail::PolicyOptions;

// Grammar policies (and `dense`, which has no grammar): trackers are SpanStates that
// share the parsed grammar.
class GrammarPolicy final : public SpanPolicy {
 public:
  GrammarPolicy(std::string name, int block_size, std::shared_ptr<const SpanGrammar> grammar)
      : SpanPolicy(std::move(name), block_size), grammar_(std::move(grammar)) {}
  std::unique_ptr<SpanTracker> start() const override { return std::make_unique<SpanState>(grammar_, block_size()); }
  bool dense() const override { return grammar_ == nullptr; }

 private:
  std::shared_ptr<const SpanGrammar> grammar_;
};

int take_block_size(PolicyOptions& options, int default_block_size) {
  SSPAN_CHECK(valid_block_size(default_block_size), "span block size must be 16, 32, 64, 128 or 256, got {}",
              default_block_size);
  const int64_t b = options.take_int("block", 16, 256, default_block_size);
  SSPAN_CHECK(valid_block_size(int(b)), "span policy '{}': block must be 16, 32, 64, 128 or 256, got '{}'",
              options.spec(), b);
  return int(b);
}

constexpr const char* kKnownPolicies =
    "use dense, arith, summary, a grammar .json file, window:sink=S,recent=R or recycled:k=K,stride=N";

std::shared_ptr<const SpanGrammar> grammar_for(std::string_view spec, const std::string& name) {
  if (name == "dense") return nullptr;
  if (name == "arith" || name == "summary") return std::make_shared<SpanGrammar>(SpanGrammar::builtin(name));
  std::error_code ec;
  SSPAN_CHECK(std::filesystem::is_regular_file(name, ec), "unknown span policy '{}': {}, optionally with :block=N",
              spec, kKnownPolicies);
  return std::make_shared<SpanGrammar>(SpanGrammar::from_file(name));
}

}  // namespace

void SpanTracker::append_last_heads(SpanBatch&) const {
  SSPAN_FAIL("span tracker: this policy's span is the same for every layer and head");
}
void SpanTracker::take_mass(int32_t, std::span<const float>, int, int) {
  SSPAN_FAIL("span tracker: this policy does not read attention mass");
}
void SpanTracker::take_top_keys(int32_t, std::span<const int32_t>, int, int) {
  SSPAN_FAIL("span tracker: this policy does not read top keys of the attention mass");
}
void SpanTracker::take_query(int32_t, std::span<const float>) {
  SSPAN_FAIL("span tracker: this policy does not read queries");
}

std::shared_ptr<const SpanPolicy> SpanPolicy::parse(std::string_view spec, int default_block_size) {
  SSPAN_CHECK(!spec.empty(), "empty span policy: {}", kKnownPolicies);
  std::string name(spec);
  PolicyOptions options;
  std::error_code ec;
  const size_t colon = spec.rfind(':');  // options never hold ':', a file name may
  if (colon != std::string_view::npos && !std::filesystem::is_regular_file(std::string(spec), ec)) {
    name = std::string(spec.substr(0, colon));
    options = PolicyOptions(spec, spec.substr(colon + 1));
  } else {
    options = PolicyOptions(spec, {});
  }
  const int block = take_block_size(options, default_block_size);
  if (name == "window") return span_detail::make_window_policy(name, block, options);
  if (name == "recycled") return span_detail::make_recycled_policy(name, block, options);
  auto grammar = grammar_for(spec, name);
  options.expect_none_left(name, "block=N");
  return std::make_shared<GrammarPolicy>(name, block, std::move(grammar));
}

std::vector<std::string> SpanPolicy::split_list(std::string_view whole) {
  std::vector<std::string> out;
  std::string_view list = whole;
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    const bool is_option = item.find('=') != std::string_view::npos && item.find(':') == std::string_view::npos;
    if (is_option && !out.empty()) {
      out.back() += ',';
      out.back() += item;
    } else {
      SSPAN_CHECK(!item.empty(), "span policy list '{}': empty item", whole);
      out.emplace_back(item);
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace sspan
