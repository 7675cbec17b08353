#pragma once
// A checkpoint's weights must be finite: one NaN or Inf in a weight turns every logit
// into NaN and the output into `<unk>` forever, so the model refuses it at load, naming
// the tensor.
#include <cstdint>

#include "sspan/checkpoint.h"

namespace sspan {

// Index of the first NaN or Inf element of `t`, or -1 when every element is finite.
// Reads the tensor once, in parallel.
int64_t find_non_finite(const TensorInfo& t);

// Throws naming the tensor, the file and the element when `t` holds a NaN or Inf.
void check_finite(const TensorInfo& t, std::string_view source);

}  // namespace sspan
