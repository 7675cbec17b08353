// Hostile checkpoints against the model and the engine: a config claiming more layers
// than the checkpoint holds, buffers sized past any machine, NaN and Inf weights. Each
// is a clear sspan::Error before anything large is allocated.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "checkpoint_writer/checkpoint_writer.h"
#include "model/llama.h"
#include "model/memory_plan.h"
#include "model/weight_check.h"
#include "sspan/engine.h"
#include "support/expect_error.h"
#include "support/test_paths.h"

namespace sspan {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using json = nlohmann::json;

using test::error_of;

void set_config_key(const fs::path& dir, const std::string& key, const json& value) {
  json c = json::parse(std::ifstream(dir / "config.json"));
  c[key] = value;
  std::ofstream(dir / "config.json") << c.dump(2);
}

std::string model_error(const fs::path& dir) {
  const ModelConfig config = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  auto backend = make_cpu_backend(2);
  return error_of([&] { LlamaModel model(config, ckpt, *backend); });
}

// The tokenizer the project ships (300 pieces): engine tests need no outside files.
fs::path shipped_tokenizer() { return test::source_dir() / "models" / "arith-tiny" / "tokenizer.model"; }

// --- 3. the layer count sizes a vector before any tensor is looked at ---

TEST(HostileModel, LayerCountBeyondTheCheckpointIsAnError) {
  for (int layers : {std::numeric_limits<int>::max(), 3'000'000, 3}) {
    const auto dir = write_tiny_llama(test::scratch_dir("layers"), TinyLlamaSpec{});
    set_config_key(dir, "num_hidden_layers", layers);
    EXPECT_THAT(model_error(dir),
                AllOf(HasSubstr(fmt::format("num_hidden_layers = {}", layers)),
                      HasSubstr(fmt::format("no tensor 'model.layers.{}.input_layernorm.weight'", layers - 1))));
  }
}

// A consistent checkpoint (sparse on disk: 1.5 GB of zeros that take no space) whose
// hidden size 2 and intermediate size 2^26 ask for 384 GB of MLP activations at 512 rows.
TEST(HostileModel, BuffersBeyondMemoryAreRefusedBeforeAllocating) {
  const auto dir = test::scratch_dir("huge");
  TinyLlamaSpec spec;
  spec.vocab_size = 300;
  spec.hidden_size = 2;
  spec.num_heads = 1;
  spec.num_kv_heads = 1;
  spec.num_layers = 1;
  spec.intermediate_size = 1 << 26;
  std::ofstream(dir / "config.json") << tiny_llama_config_json(spec);
  std::vector<SafetensorsWriter::Entry> entries;
  int64_t data_bytes = 0;
  for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"model.embed_tokens.weight", {300, 2}},
           {"model.layers.0.input_layernorm.weight", {2}},
           {"model.layers.0.self_attn.q_proj.weight", {2, 2}},
           {"model.layers.0.self_attn.k_proj.weight", {2, 2}},
           {"model.layers.0.self_attn.v_proj.weight", {2, 2}},
           {"model.layers.0.self_attn.o_proj.weight", {2, 2}},
           {"model.layers.0.post_attention_layernorm.weight", {2}},
           {"model.layers.0.mlp.gate_proj.weight", {1 << 26, 2}},
           {"model.layers.0.mlp.up_proj.weight", {1 << 26, 2}},
           {"model.layers.0.mlp.down_proj.weight", {2, 1 << 26}},
           {"model.norm.weight", {2}},
           {"lm_head.weight", {300, 2}}}) {
    entries.push_back({name, DType::F32, shape});
    data_bytes += 4 * (shape.size() == 1 ? shape[0] : shape[0] * shape[1]);
  }
  { SafetensorsWriter header_only(dir / "model.safetensors", entries); }
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") + uint64_t(data_bytes));

  EngineOptions o;
  o.model_dir = dir;
  o.tokenizer_file = shipped_tokenizer();
  o.max_context = 64;
  o.threads = 1;
  EXPECT_THAT(error_of([&] { Engine e(o); }),
              AllOf(HasSubstr("config.json"), HasSubstr("MLP activations"), HasSubstr("intermediate_size 67108864"),
                    HasSubstr("--max-step-rows")));
}

// --- the plan is what the CPU backend allocates ---

TEST(MemoryPlan, KvCacheBytesAreWhatTheBackendAllocates) {
  TinyLlamaSpec spec;
  spec.num_kv_heads = 2;
  const auto dir = write_tiny_llama(test::scratch_dir("plan"), spec);
  const ModelConfig c = ModelConfig::from_file(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  for (DType kv_dtype : {DType::F32, DType::F16}) {  // the CPU KV cache may be half precision
    auto backend = make_cpu_backend(1, kv_dtype);
    EXPECT_EQ(backend->kv_dtype(), kv_dtype);
    LlamaModel model(c, ckpt, *backend);
    model.allocate(48, 8, 3, 100);
    const MemoryPlan plan = plan_memory(c, 48, 8, 3, 100, DType::F32, kv_dtype, Device::CPU);
    uint64_t kv = 0, activations = 0;
    for (const auto& b : plan.buffers) (b.name == "KV cache" ? kv : activations) += b.bytes;
    EXPECT_EQ(kv, backend->kv_cache_bytes());
    // x, xn, proj, q, att, k, v, gate, up, ffn [48 rows]; last [8, H]; logits and host copy [8, V].
    const uint64_t H = 64, I = 160, Q = 64, KV = 32, V = 96;
    EXPECT_EQ(activations, 4 * (48 * (3 * H + 2 * Q + 2 * KV + 3 * I) + 8 * H + 2 * 8 * V));
    EXPECT_EQ(plan.device_bytes(), 0u);
  }
}

TEST(MemoryPlan, ProductsThatOverflowAreReportedNotWrapped) {
  ModelConfig c;
  c.hidden_size = c.intermediate_size = c.num_hidden_layers = c.vocab_size = std::numeric_limits<int>::max();
  c.num_attention_heads = c.num_key_value_heads = 1;
  c.head_dim = std::numeric_limits<int>::max();
  const MemoryPlan plan = plan_memory(c, 1 << 20, 1 << 20, 1 << 10, 1 << 20, DType::F32, DType::F32, Device::CPU);
  EXPECT_EQ(plan.host_bytes(), std::numeric_limits<uint64_t>::max());
  EXPECT_THAT(error_of([&] { check_memory_plan(plan, uint64_t(1) << 40, "cfg.json"); }),
              AllOf(HasSubstr("cfg.json"), HasSubstr("more than 2^64 bytes"), HasSubstr("KV cache")));
  EXPECT_GT(host_memory_limit(), uint64_t(1) << 26);
}

// --- 11. NaN and Inf weights ---

TEST(HostileModel, NonFiniteWeightsAreRefusedNamingTheTensor) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    for (float bad : {nan, inf, -inf}) {
      TinyLlamaSpec spec;
      spec.dtype = dtype;
      const auto dir = test::scratch_dir("nan");
      std::ofstream(dir / "config.json") << tiny_llama_config_json(spec);
      auto tensors = tiny_llama_tensors(spec);
      for (auto& t : tensors)
        if (t.name == "model.layers.1.mlp.down_proj.weight") t.values[17] = bad;
      write_safetensors(dir / "model.safetensors", tensors);
      EXPECT_THAT(model_error(dir), AllOf(HasSubstr("'model.layers.1.mlp.down_proj.weight'"),
                                          HasSubstr("NaN or Inf"), HasSubstr("element 17 of")))
          << dtype_name(dtype) << " " << bad;
    }
  }
}

TEST(HostileModel, FindNonFiniteLooksAtEveryElement) {
  // Several parallel chunks over two tensors; the bad element last, then first.
  std::vector<float> a(size_t(1) << 20, 0.5f), b(1000, -2.f);
  auto info = [](const std::string& name, std::vector<float>& v) {
    TensorInfo t;
    t.name = name;
    t.dtype = DType::F32;
    t.shape = {int64_t(v.size())};
    t.nbytes = v.size() * 4;
    t.data = reinterpret_cast<const std::byte*>(v.data());
    return t;
  };
  const TensorInfo ta = info("a", a), tb = info("b", b);
  const std::vector<const TensorInfo*> both = {&ta, &tb};
  auto found = [&] {
    const NonFinite f = find_non_finite(both);
    return std::pair(f.tensor, f.element);
  };
  EXPECT_EQ(found(), std::pair(int64_t(-1), int64_t(-1)));
  b.back() = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(found(), std::pair(int64_t(1), int64_t(999)));
  a.back() = std::numeric_limits<float>::infinity();
  EXPECT_EQ(found(), std::pair(int64_t(0), int64_t(a.size()) - 1));
  a.front() = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(found(), std::pair(int64_t(0), int64_t(0)));
  a.front() = std::numeric_limits<float>::max();  // large but finite
  EXPECT_EQ(found(), std::pair(int64_t(0), int64_t(a.size()) - 1));
}

}  // namespace
}  // namespace sspan
