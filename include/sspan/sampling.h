#pragma once
// How the next token is chosen from a row of logits. One struct for the library, the
// scheduler and the backends (src/runtime/sampler.h applies it on the host; a GPU backend
// may apply the temperature / top-k / top-p part on the device).
#include <cstdint>

namespace sspan {

struct SamplingOptions {
  float temperature = 0.f;     // 0: greedy (argmax)
  int top_k = 0;               // 0: off
  float top_p = 1.f;           // 1: off
  float min_p = 0.f;           // keep tokens with p >= min_p * p_max; 0: off
  float repeat_penalty = 1.f;  // llama.cpp's: a logit l of a recent token becomes l / r if l > 0, else l * r; 1: off
  int repeat_last_n = 64;      // recent tokens (prompt included) the penalty looks at; 0: none, -1: all
  uint64_t seed = 0;           // the request's own random stream

  // The parts a device sampler implements (temperature, top-k, top-p): true when the
  // other filters are off.
  bool device_capable() const { return min_p == 0.f && (repeat_penalty == 1.f || repeat_last_n == 0); }
};

}  // namespace sspan
