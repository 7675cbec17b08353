// sspan-random-model: write a random LLaMA checkpoint in the Hugging Face layout, for
// benchmarks and for trying the engine without downloading a model.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <cmath>

#include "checkpoint_writer/checkpoint_writer.h"
#include "sspan/config.h"
#include "sspan/error.h"
#include "sspan/tokenizer.h"

int main(int argc, char** argv) {
  CLI::App app{"sspan-random-model: write a random LLaMA checkpoint (config.json + safetensors)"};
  sspan::TinyLlamaSpec s;
  s.max_position_embeddings = 2048;
  std::string out, preset, dtype = "float16", tokenizer;
  app.add_option("-o,--output", out, "Output directory")->required();
  app.add_option("--preset", preset, "Shape preset: 15m or 100m (other flags override it)")
      ->check(CLI::IsMember({"15m", "100m"}));
  auto* hidden = app.add_option("--hidden", s.hidden_size, "hidden_size")->check(CLI::PositiveNumber);
  auto* inter = app.add_option("--intermediate", s.intermediate_size, "intermediate_size")->check(CLI::PositiveNumber);
  auto* layers = app.add_option("--layers", s.num_layers, "num_hidden_layers")->check(CLI::PositiveNumber);
  auto* heads = app.add_option("--heads", s.num_heads, "num_attention_heads")->check(CLI::PositiveNumber);
  auto* kv = app.add_option("--kv-heads", s.num_kv_heads, "num_key_value_heads")->check(CLI::PositiveNumber);
  auto* vocab = app.add_option("--vocab", s.vocab_size, "vocab_size (default: the tokenizer's)")->check(CLI::PositiveNumber);
  app.add_option("--max-positions", s.max_position_embeddings, "max_position_embeddings")->check(CLI::PositiveNumber);
  app.add_option("--dtype", dtype, "float32, float16 or bfloat16")->check(CLI::IsMember({"float32", "float16", "bfloat16"}));
  app.add_option("--shards", s.shards, "Number of safetensors shards")->check(CLI::PositiveNumber);
  app.add_option("--seed", s.seed, "Random seed");
  auto* tie = app.add_flag("--tie,!--no-tie", s.tie_word_embeddings, "Tie the LM head to the embedding (presets: tied)");
  bool no_tokenizer = false;
  auto* tok_opt = app.add_option("--tokenizer", tokenizer,
                                 "Tokenizer file to copy into the checkpoint (tokenizer.model or tokenizer.json); "
                                 "required, as the engine runs no model without one")
                      ->check(CLI::ExistingFile);
  app.add_flag("--no-tokenizer", no_tokenizer,
               "Write the weights and config alone (for sspan-bench decode, which needs no tokenizer)")
      ->excludes(tok_opt);
  CLI11_PARSE(app, argc, argv);

  try {
    if (tokenizer.empty() && !no_tokenizer)
      throw sspan::Error("give --tokenizer FILE: sspan-generate and the engine refuse a model directory without a "
                         "tokenizer (--no-tokenizer writes the weights alone, for sspan-bench decode)");
    // A preset fills the shape; flags given explicitly keep their values.
    auto set = [](CLI::Option* opt, int& field, int value) {
      if (opt->count() == 0) field = value;
    };
    if (!preset.empty() && tie->count() == 0) s.tie_word_embeddings = true;  // as llama2.c's 15M/110M
    if (preset == "15m") {  // ~15M parameters with a 32k vocabulary
      set(hidden, s.hidden_size, 288), set(inter, s.intermediate_size, 768), set(layers, s.num_layers, 6);
      set(heads, s.num_heads, 6), set(kv, s.num_kv_heads, 6), set(vocab, s.vocab_size, 32000);
    } else if (preset == "100m") {  // ~110M parameters with a 32k vocabulary
      set(hidden, s.hidden_size, 768), set(inter, s.intermediate_size, 2048), set(layers, s.num_layers, 12);
      set(heads, s.num_heads, 12), set(kv, s.num_kv_heads, 12), set(vocab, s.vocab_size, 32000);
    }
    if (!tokenizer.empty() && vocab->count() == 0) s.vocab_size = sspan::Tokenizer::load(tokenizer).vocab_size();
    if (!sspan::parse_dtype(dtype, &s.dtype)) throw sspan::Error("unknown dtype " + dtype);
    if (s.hidden_size % s.num_heads || s.num_heads % s.num_kv_heads)
      throw sspan::Error("heads must divide hidden and kv heads must divide heads");
    s.init_scale = 0.5f / std::sqrt(float(s.hidden_size));
    sspan::write_tiny_llama(out, s);
    if (!tokenizer.empty())
      std::filesystem::copy_file(tokenizer,
                                 std::filesystem::path(out) /
                                     (std::filesystem::path(tokenizer).extension() == ".json" ? "tokenizer.json"
                                                                                               : "tokenizer.model"),
                                 std::filesystem::copy_options::overwrite_existing);
    const auto cfg = sspan::ModelConfig::from_file(std::filesystem::path(out) / "config.json");
    std::printf("wrote %s: %.1fM parameters, hidden %d, intermediate %d, layers %d, heads %d/%d, vocab %d, %s%s\n",
                out.c_str(), double(cfg.num_parameters()) / 1e6, s.hidden_size, s.intermediate_size, s.num_layers,
                s.num_heads, s.num_kv_heads, s.vocab_size, dtype.c_str(), s.tie_word_embeddings ? ", tied" : "");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sspan-random-model: error: %s\n", e.what());
    return 1;
  }
}
