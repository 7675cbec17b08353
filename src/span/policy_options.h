#pragma once
// The "key=value,..." options of one span policy spec, read by SpanPolicy::parse and by
// the policies that take options of their own (window_policy.cpp, recycled_policy.cpp).
// Every take_* removes what it read, so the options left at the end are unknown ones.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sspan/span.h"

namespace sspan::span_detail {

class PolicyOptions {
 public:
  // Parses `text` ("key=value,key=value"); empty values, a missing '=' and repeated keys
  // are errors naming `spec`.
  PolicyOptions(std::string_view spec, std::string_view text);
  PolicyOptions() = default;

  const std::string& spec() const { return spec_; }
  bool empty() const { return values_.empty(); }
  // An integer in [lo, hi]; `fallback` when absent.
  std::optional<int64_t> take_int(std::string_view key, int64_t lo, int64_t hi);
  int64_t take_int(std::string_view key, int64_t lo, int64_t hi, int64_t fallback) {
    return take_int(key, lo, hi).value_or(fallback);
  }
  // A real number in [lo, hi].
  std::optional<double> take_real(std::string_view key, double lo, double hi);
  // Throws for the first option left, naming what policy `name` takes (`takes`).
  void expect_none_left(std::string_view name, std::string_view takes) const;

 private:
  std::string spec_;
  std::map<std::string, std::string, std::less<>> values_;
};

// The grammar-free policies; `options` holds what is left after block=.
std::shared_ptr<const SpanPolicy> make_window_policy(std::string name, int block_size, PolicyOptions& options);
std::shared_ptr<const SpanPolicy> make_recycled_policy(std::string name, int block_size, PolicyOptions& options);

}  // namespace sspan::span_detail
