#pragma once
// Tests write their checkpoints with the library's writer (include/sspan/checkpoint_writer.h).
#include "sspan/checkpoint_writer.h"

namespace sspan::test {
using sspan::tiny_llama_config_json;
using sspan::tiny_llama_tensors;
using sspan::TensorSpec;
using sspan::TinyLlamaSpec;
using sspan::write_safetensors;
using sspan::write_tiny_llama;
}  // namespace sspan::test
