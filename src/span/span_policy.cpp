// SpanPolicy::parse: the one place a span policy string becomes a policy.
#include <charconv>
#include <map>

#include "common/check.h"
#include "sspan/span.h"

namespace sspan {
namespace {

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

using Options = std::map<std::string, std::string, std::less<>>;

// "key=value,key=value" -> map; empty values, missing '=' and repeated keys are errors.
Options parse_options(std::string_view spec, std::string_view text) {
  Options out;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    const size_t eq = item.find('=');
    SSPAN_CHECK(eq != std::string_view::npos && eq > 0 && eq + 1 < item.size(),
                "span policy '{}': option '{}' is not key=value", spec, item);
    const auto [it, fresh] = out.emplace(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
    SSPAN_CHECK(fresh, "span policy '{}': option '{}' given twice", spec, it->first);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
    SSPAN_CHECK(!text.empty(), "span policy '{}': empty option after ','", spec);
  }
  return out;
}

int take_block_size(std::string_view spec, Options& options, int default_block_size) {
  const auto it = options.find("block");
  if (it == options.end()) {
    SSPAN_CHECK(valid_block_size(default_block_size), "span block size must be 16, 32, 64, 128 or 256, got {}",
                default_block_size);
    return default_block_size;
  }
  int b = 0;
  const std::string& v = it->second;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), b);
  SSPAN_CHECK(ec == std::errc() && end == v.data() + v.size() && valid_block_size(b),
              "span policy '{}': block must be 16, 32, 64, 128 or 256, got '{}'", spec, v);
  options.erase(it);
  return b;
}

std::shared_ptr<const SpanGrammar> grammar_for(std::string_view spec, const std::string& name) {
  if (name == "dense") return nullptr;
  if (name == "arith" || name == "summary") return std::make_shared<SpanGrammar>(SpanGrammar::builtin(name));
  std::error_code ec;
  SSPAN_CHECK(std::filesystem::is_regular_file(name, ec),
              "unknown span policy '{}': use dense, arith, summary or a grammar .json file, optionally with "
              ":block=N",
              spec);
  return std::make_shared<SpanGrammar>(SpanGrammar::from_file(name));
}

}  // namespace

std::shared_ptr<const SpanPolicy> SpanPolicy::parse(std::string_view spec, int default_block_size) {
  SSPAN_CHECK(!spec.empty(), "empty span policy: use dense, arith, summary or a grammar .json file");
  std::string name(spec);
  Options options;
  std::error_code ec;
  const size_t colon = spec.rfind(':');  // options never hold ':', a file name may
  if (colon != std::string_view::npos && !std::filesystem::is_regular_file(std::string(spec), ec)) {
    name = std::string(spec.substr(0, colon));
    options = parse_options(spec, spec.substr(colon + 1));
  }
  const int block = take_block_size(spec, options, default_block_size);
  auto grammar = grammar_for(spec, name);
  SSPAN_CHECK(options.empty(), "span policy '{}': unknown option '{}' (policy '{}' takes block=N)", spec,
              options.begin()->first, name);
  return std::make_shared<GrammarPolicy>(name, block, std::move(grammar));
}

}  // namespace sspan
