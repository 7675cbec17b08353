#pragma once
// The bytes the engine's buffers take, computed from the config and the run options
// before anything is allocated, so that a config asking for terabytes fails at once with
// the keys and options to change, instead of std::bad_alloc (or the OOM killer) later.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/tensor.h"
#include "sspan/config.h"

namespace sspan {

struct BufferBytes {
  std::string name;       // "KV cache", "MLP activations", ...
  std::string driven_by;  // the config keys and options its size is a product of
  uint64_t bytes = 0;     // UINT64_MAX when the product overflows
  bool on_host = true;    // false: in device memory
};

struct MemoryPlan {
  std::vector<BufferBytes> buffers;
  uint64_t host_bytes() const;
  uint64_t device_bytes() const;
  // The host total and the three largest host buffers with what drives them.
  std::string summary() const;
};

// What LlamaModel::allocate(rows, logit_rows, slots, max_ctx) and the engine's host copy
// of the logits take on a backend whose activations are `act` and KV cache `kv`, in
// `device` memory.
MemoryPlan plan_memory(const ModelConfig& config, int rows, int logit_rows, int slots, int max_ctx, DType act,
                       DType kv, Device device);

// The host memory a process may use: physical memory, or the address-space limit when
// that is lower.
uint64_t host_memory_limit();

// Throws, listing the largest buffers and what drives them, when the plan's host bytes
// exceed `host_limit`. `config_source` names the config in the message.
void check_memory_plan(const MemoryPlan& plan, uint64_t host_limit, std::string_view config_source);

}  // namespace sspan
