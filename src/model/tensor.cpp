#include "model/tensor.h"

#include <string>

namespace sspan {

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace sspan
