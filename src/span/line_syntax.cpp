// Reference lists and anchors in the text of a line.
#include "span/line_syntax.h"

#include <algorithm>

namespace sspan::span_detail {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// A non-negative id: 1..kMaxIdDigits decimal digits and nothing else.
std::optional<int64_t> parse_id(std::string_view s) {
  if (s.empty() || s.size() > size_t(kMaxIdDigits)) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<RefItem> parse_item(const SpanGrammar& g, std::string_view item) {
  item = trim_spaces(item);
  if (g.relative_refs && item == "-1") return RefItem{.previous_line = true};
  if (!g.range_sep.empty()) {
    const size_t at = item.find(g.range_sep);
    if (at != std::string_view::npos && at > 0) {
      const auto first = parse_id(trim_spaces(item.substr(0, at)));
      const auto last = parse_id(trim_spaces(item.substr(at + g.range_sep.size())));
      if (!first || !last || *first > *last) return std::nullopt;
      return RefItem{.first = *first, .last = *last};
    }
  }
  const auto id = parse_id(item);
  if (!id) return std::nullopt;
  return RefItem{.first = *id, .last = *id};
}

}  // namespace

std::optional<std::vector<RefItem>> parse_list_items(const SpanGrammar& g, std::string_view body) {
  std::vector<RefItem> items;
  while (true) {
    const size_t sep = body.find(g.list_sep);
    const auto item = parse_item(g, body.substr(0, sep));
    if (!item) return std::nullopt;  // also the empty list and empty items ("[]", "[0,]")
    items.push_back(*item);
    if (sep == std::string_view::npos) return items;
    body.remove_prefix(sep + g.list_sep.size());
  }
}

void ListReader::reset() {
  status_ = Status::Undecided;
  inner_begin_ = search_from_ = list_end_ = 0;
  items_.clear();
}

ListReader::Status ListReader::update(std::string_view line, bool line_ended) {
  if (status_ == Status::Undecided) {
    size_t start = 0;
    while (start < line.size() && line[start] == ' ') ++start;
    const std::string_view rest = line.substr(start);
    const std::string_view open = g_->list_open;
    if (rest.size() >= open.size()) {
      status_ = rest.starts_with(open) ? Status::Open : Status::NotList;
      inner_begin_ = search_from_ = start + open.size();
    } else if (line_ended || !open.starts_with(rest)) {
      status_ = Status::NotList;
    }
  }
  if (status_ == Status::Open) {
    const size_t close = line.find(g_->list_close, search_from_);
    if (close != std::string_view::npos) {
      list_end_ = close + g_->list_close.size();
      auto items = parse_list_items(*g_, line.substr(inner_begin_, close - inner_begin_));
      if (items) {
        items_ = std::move(*items);
        status_ = Status::Complete;
      } else {
        status_ = Status::Malformed;
      }
    } else if (line_ended) {
      status_ = Status::Malformed;  // the line ended before the list closed
    } else {
      // The closing bracket may straddle what is here and what comes next.
      const size_t keep = g_->list_close.size() - 1;
      search_from_ = std::max(inner_begin_, line.size() > keep ? line.size() - keep : size_t(0));
    }
  }
  return status_;
}

std::optional<int64_t> parse_anchor(const SpanGrammar& g, std::string_view line, size_t search_from) {
  if (g.anchor_place == SpanGrammar::AnchorPlace::LineStart) {
    // spaces, open, spaces, digits, spaces, close
    std::string_view s = line;
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    if (!s.starts_with(g.anchor_open)) return std::nullopt;
    s.remove_prefix(g.anchor_open.size());
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    size_t digits = 0;
    while (digits < s.size() && is_digit(s[digits])) ++digits;
    const auto id = parse_id(s.substr(0, digits));
    if (!id) return std::nullopt;
    s.remove_prefix(digits);
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    if (!s.starts_with(g.anchor_close)) return std::nullopt;
    return id;
  }
  // Line end: open, spaces, digits, spaces, close, trailing spaces.
  std::string_view s = search_from < line.size() ? line.substr(search_from) : std::string_view{};
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (!s.ends_with(g.anchor_close)) return std::nullopt;
  s.remove_suffix(g.anchor_close.size());
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  size_t digits = 0;
  while (digits < s.size() && is_digit(s[s.size() - 1 - digits])) ++digits;
  const auto id = parse_id(s.substr(s.size() - digits));
  if (!id) return std::nullopt;
  s.remove_suffix(digits);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (!s.ends_with(g.anchor_open)) return std::nullopt;
  return id;
}

}  // namespace sspan::span_detail
