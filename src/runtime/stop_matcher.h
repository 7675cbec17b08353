#pragma once
// Stop strings over a stream of text pieces. Text is released only once no stop string
// can still begin inside it, so a streamed request never shows text that its final result
// leaves out; the text before the first stop string is all that is ever released.
#include <string>
#include <string_view>
#include <vector>

namespace sspan {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops = {});

  // Add a piece; returns the text that is now safe to release (possibly empty).
  // After a stop string matched, stopped() is true and the text before it is released.
  std::string_view push(std::string_view piece);
  // End of the stream: release whatever is held (no stop string matched).
  std::string_view finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;      // text not yet released
  std::string released_;  // scratch returned by push/finish
  bool stopped_ = false;
};

}  // namespace sspan
