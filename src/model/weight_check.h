#pragma once
// A checkpoint's weights must be finite: one NaN or Inf in a weight turns every logit
// into NaN and the output into `<unk>` forever, so the model refuses it at load, naming
// the tensor.
#include <cstdint>
#include <span>
#include <string_view>

#include "sspan/checkpoint.h"

namespace sspan {

struct NonFinite {
  int64_t tensor = -1;   // index into the tensors given; -1: every element is finite
  int64_t element = -1;  // first NaN or Inf of that tensor
};

// The first NaN or Inf of `tensors`, in their order. Reads each element once, the whole
// set in one parallel pass (one parallel region per checkpoint, not per tensor).
NonFinite find_non_finite(std::span<const TensorInfo* const> tensors);

// Throws naming the tensor, `source` (the checkpoint) and the element when a NaN or Inf
// is found.
void check_finite(std::span<const TensorInfo* const> tensors, std::string_view source);

}  // namespace sspan
