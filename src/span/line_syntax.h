#pragma once
// Reading a grammar's syntax in the text of one line: the reference list at its start
// (incrementally, as token texts arrive) and its anchor.
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "sspan/span.h"

namespace sspan::span_detail {

// Ids are non-negative decimal integers of at most this many digits; a longer digit run
// is not an id (a list naming one is malformed).
inline constexpr int kMaxIdDigits = 9;

// One item of a reference list: the previous line, or the anchors first..last inclusive.
struct RefItem {
  bool previous_line = false;
  int64_t first = 0;
  int64_t last = 0;
};

// Follows the start of one line as its text grows and decides whether it begins with a
// reference list and whether that list is complete and well formed.
class ListReader {
 public:
  enum class Status {
    Undecided,  // only spaces, or a prefix of the opening bracket, so far
    NotList,    // the line does not begin with a reference list
    Open,       // the list began; its closing bracket has not been seen
    Complete,   // closed and well formed: items() holds it
    Malformed,  // closed with bad contents, or the line ended before it closed
  };

  explicit ListReader(const SpanGrammar& grammar) : g_(&grammar) {}
  void reset();
  // `line` is the whole text of the line so far (without its '\n'); it only grows between
  // calls. `line_ended`: no more text will come.
  Status update(std::string_view line, bool line_ended);

  Status status() const { return status_; }
  const std::vector<RefItem>& items() const { return items_; }
  // Offset just past the closing bracket (Complete or Malformed-after-close), else 0.
  size_t list_end() const { return list_end_; }

 private:
  const SpanGrammar* g_;
  Status status_ = Status::Undecided;
  size_t inner_begin_ = 0;   // offset of the first byte after the opening bracket
  size_t search_from_ = 0;   // where to look for the closing bracket next
  size_t list_end_ = 0;
  std::vector<RefItem> items_;
};

// The items of a list body (the text between the brackets); nullopt when malformed.
std::optional<std::vector<RefItem>> parse_list_items(const SpanGrammar& g, std::string_view body);

// The anchor id a finished line defines, if any. `line` excludes the '\n'; for line-end
// anchors only text from `search_from` on (past the line's reference list) is considered.
std::optional<int64_t> parse_anchor(const SpanGrammar& g, std::string_view line, size_t search_from);

}  // namespace sspan::span_detail
