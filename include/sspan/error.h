#pragma once
// The one exception type the library throws. Every message names the thing at fault
// (file, tensor, flag, config key) so that a user can act on it.
#include <stdexcept>
#include <string>

namespace sspan {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace sspan
