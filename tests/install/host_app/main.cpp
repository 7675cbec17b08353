// Reads a checkpoint written by the installed sspan-random-model: parses its config and
// a tensor through the installed library, which proves headers, library and
// dependencies resolve from the package alone.
#include <cstdio>
#include <filesystem>

#include "sspan/checkpoint.h"
#include "sspan/config.h"
#include "sspan/span.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::filesystem::path dir = argv[1];
  const auto cfg = sspan::ModelConfig::from_file(dir / "config.json");
  const auto ckpt = sspan::Checkpoint::open(dir);
  const auto& embed = ckpt.get("model.embed_tokens.weight");
  const auto arith = sspan::SpanGrammar::builtin("arith");
  std::printf("hidden %d, embed [%lld, %lld], grammar %s\n", cfg.hidden_size, (long long)embed.shape[0],
              (long long)embed.shape[1], arith.name.c_str());
  return cfg.hidden_size == 64 && embed.shape[0] == cfg.vocab_size && embed.shape[1] == 64 ? 0 : 1;
}
