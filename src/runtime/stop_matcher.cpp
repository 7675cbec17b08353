#include "runtime/stop_matcher.h"

#include <algorithm>

namespace sspan {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

std::string_view StopMatcher::push(std::string_view piece) {
  released_.clear();
  if (stopped_) return released_;
  held_.append(piece);
  if (stops_.empty()) {
    released_.swap(held_);
    return released_;
  }
  // The earliest complete match ends the stream.
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    released_.assign(held_, 0, first);
    held_.clear();
    stopped_ = true;
    return released_;
  }
  // Hold the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& s : stops_)
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
  released_.assign(held_, 0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return released_;
}

std::string_view StopMatcher::finish() {
  released_.clear();
  if (!stopped_) released_.swap(held_);
  held_.clear();
  return released_;
}

}  // namespace sspan
