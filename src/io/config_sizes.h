#pragma once
// The check every reader of hyper-parameters (config.json, GGUF metadata) ends with: each
// size the engine computes from a ModelConfig fits its type.
#include <string_view>

#include "sspan/config.h"

namespace sspan {

// Throws naming `source` and the keys when heads x head_dim exceeds an int or the
// parameter count 2^48 (defined in config.cpp).
void check_config_sizes(const ModelConfig& config, std::string_view source);

}  // namespace sspan
