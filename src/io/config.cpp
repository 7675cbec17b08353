// config.json of a Hugging Face LLaMA checkpoint. Reads what the forward pass needs and
// refuses, with the reason, every setting the engine would otherwise silently ignore.
#include <limits>

#include "common/check.h"
#include "io/config_sizes.h"
#include "io/json_strict.h"
#include "io/untrusted_files.h"
#include "sspan/config.h"

namespace sspan {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxConfigBytes = 1 << 20;  // real configs are a few KB

// Typed access to one config object; every error names the file and the key. A key set
// to null counts as absent, as transformers treats it.
class Fields {
 public:
  Fields(const json& obj, std::string_view src, std::string prefix = "")
      : obj_(obj), src_(src), prefix_(std::move(prefix)) {}

  const json* find(const char* key) const {
    const auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const char* key) const { return find(key) != nullptr; }

  const json& required(const char* key) const {
    const json* v = find(key);
    SSPAN_CHECK(v, "{}: missing required key \"{}{}\"", src_, prefix_, key);
    return *v;
  }

  int integer(const json& v, const char* key) const {
    SSPAN_CHECK(v.is_number_integer(), "{}: \"{}{}\" must be an integer, got {}", src_, prefix_, key, io::json_summary(v));
    const auto x = v.get<int64_t>();
    SSPAN_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max()),
                "{}: \"{}{}\" = {} is out of range", src_, prefix_, key, io::json_summary(v));
    SSPAN_CHECK(x >= std::numeric_limits<int>::min() && x <= std::numeric_limits<int>::max(),
                "{}: \"{}{}\" = {} is out of range", src_, prefix_, key, io::json_summary(v));
    return int(x);
  }
  int positive_int(const char* key) const {
    const int x = integer(required(key), key);
    SSPAN_CHECK(x > 0, "{}: \"{}{}\" must be positive, got {}", src_, prefix_, key, x);
    return x;
  }
  int positive_int(const char* key, int fallback) const { return has(key) ? positive_int(key) : fallback; }
  int int_or(const char* key, int fallback) const { return has(key) ? integer(*find(key), key) : fallback; }

  double positive_number(const char* key) const {
    const json& v = required(key);
    SSPAN_CHECK(v.is_number(), "{}: \"{}{}\" must be a number, got {}", src_, prefix_, key, io::json_summary(v));
    const double x = v.get<double>();
    SSPAN_CHECK(x > 0, "{}: \"{}{}\" must be positive, got {}", src_, prefix_, key, io::json_summary(v));
    return x;
  }
  double positive_number(const char* key, double fallback) const {
    return has(key) ? positive_number(key) : fallback;
  }

  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    SSPAN_CHECK(v->is_boolean(), "{}: \"{}{}\" must be true or false, got {}", src_, prefix_, key, io::json_summary(*v));
    return v->get<bool>();
  }

  std::string string(const char* key, std::string fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    SSPAN_CHECK(v->is_string(), "{}: \"{}{}\" must be a string, got {}", src_, prefix_, key, io::json_summary(*v));
    return v->get<std::string>();
  }

  std::string_view src() const { return src_; }

 private:
  const json& obj_;
  std::string_view src_;
  std::string prefix_;
};

// Up to four entries of a list of strings, for a message.
std::string first_strings(const json& list) {
  std::string out;
  size_t i = 0;
  for (const auto& a : list) {
    if (i == 4) return out + fmt::format(", ... ({} in all)", list.size());
    out += (i++ ? ", " : "") + io::json_summary(a);
  }
  return out;
}

void check_architecture(const Fields& f) {
  const std::string model_type = f.string("model_type", "");
  SSPAN_CHECK(model_type.empty() || model_type == "llama",
              "{}: model_type '{}' is not supported (sspan runs LLaMA models, model_type \"llama\")", f.src(),
              io::brief_text(model_type));
  if (const json* arch = f.find("architectures")) {
    SSPAN_CHECK(arch->is_array(), "{}: \"architectures\" must be a list of strings, got {}", f.src(),
                io::json_summary(*arch));
    bool llama = false;
    for (const auto& a : *arch) {
      SSPAN_CHECK(a.is_string(), "{}: \"architectures\" must be a list of strings, got {} in it", f.src(),
                  io::json_summary(a));
      llama = llama || a.get<std::string>() == "LlamaForCausalLM";
    }
    SSPAN_CHECK(llama, "{}: architectures [{}] does not include LlamaForCausalLM, the only architecture sspan runs",
                f.src(), first_strings(*arch));
  } else {
    SSPAN_CHECK(model_type == "llama",
                "{}: neither \"architectures\" nor \"model_type\" says this is a LLaMA model", f.src());
  }
  SSPAN_CHECK(!f.boolean("attention_bias", false),
              "{}: attention_bias is true; sspan runs LLaMA attention without projection biases", f.src());
  SSPAN_CHECK(!f.boolean("mlp_bias", false), "{}: mlp_bias is true; sspan runs the LLaMA MLP without biases",
              f.src());
  const std::string act = f.string("hidden_act", "silu");
  SSPAN_CHECK(act == "silu", "{}: hidden_act '{}' is not supported (sspan implements SwiGLU with silu)", f.src(),
              io::brief_text(act));
}

// rope_scaling (transformers < 5) or rope_parameters (transformers >= 5, which also
// moves rope_theta inside it).
RopeScaling parse_rope(const Fields& top, double* theta) {
  RopeScaling r;
  const char* key = top.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const json* v = top.find(key);
  if (!v) return r;
  SSPAN_CHECK(v->is_object(), "{}: \"{}\" must be an object or null, got {}", top.src(), key, io::json_summary(*v));
  const Fields f(*v, top.src(), std::string(key) + ".");
  if (f.has("rope_theta")) *theta = f.positive_number("rope_theta");
  const std::string type = f.has("rope_type") ? f.string("rope_type", "") : f.string("type", "default");
  if (type == "default") return r;
  if (type == "linear") {
    r.type = RopeScaling::Type::Linear;
    r.factor = f.positive_number("factor");
    return r;
  }
  if (type == "llama3") {
    r.type = RopeScaling::Type::Llama3;
    r.factor = f.positive_number("factor");
    r.low_freq_factor = f.positive_number("low_freq_factor");
    r.high_freq_factor = f.positive_number("high_freq_factor");
    r.original_max_position_embeddings = f.positive_int("original_max_position_embeddings");
    SSPAN_CHECK(r.high_freq_factor > r.low_freq_factor,
                "{}: {}.high_freq_factor ({}) must be greater than low_freq_factor ({})", top.src(), key,
                r.high_freq_factor, r.low_freq_factor);
    return r;
  }
  SSPAN_FAIL("{}: {} type '{}' is not supported (sspan supports default, linear and llama3)", top.src(), key,
             io::brief_text(type));
}

std::vector<int> parse_eos(const Fields& f) {
  const json* v = f.find("eos_token_id");
  if (!v) return {2};
  if (!v->is_array()) return {f.integer(*v, "eos_token_id")};
  SSPAN_CHECK(!v->empty(), "{}: \"eos_token_id\" is an empty list", f.src());
  std::vector<int> ids;
  for (const auto& e : *v) ids.push_back(f.integer(e, "eos_token_id"));
  return ids;
}

DType parse_torch_dtype(const Fields& f) {
  // transformers >= 5 writes "dtype"; earlier versions "torch_dtype".
  const char* key = f.has("torch_dtype") ? "torch_dtype" : "dtype";
  const std::string s = f.string(key, "float32");
  if (s == "float32") return DType::F32;
  if (s == "float16") return DType::F16;
  if (s == "bfloat16") return DType::BF16;
  SSPAN_FAIL("{}: {} '{}' is not supported (float32, float16 or bfloat16)", f.src(), key, io::brief_text(s));
}

}  // namespace

// Every size the engine computes from the config must fit its type: q_dim() and kv_dim()
// are int (so a tensor row count), and the parameter count must fit int64 with room to
// spare. A config that breaks this describes no checkpoint that can exist.
void check_config_sizes(const ModelConfig& c, std::string_view src) {
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  SSPAN_CHECK(int64_t(c.num_attention_heads) * c.head_dim <= kMaxInt,
              "{}: num_attention_heads {} x head_dim {} = {} is beyond any tensor's row count", src,
              c.num_attention_heads, c.head_dim, int64_t(c.num_attention_heads) * c.head_dim);
  SSPAN_CHECK(int64_t(c.num_key_value_heads) * c.head_dim <= kMaxInt,
              "{}: num_key_value_heads {} x head_dim {} = {} is beyond any tensor's row count", src,
              c.num_key_value_heads, c.head_dim, int64_t(c.num_key_value_heads) * c.head_dim);
  // num_parameters() in 128 bits; 2^48 parameters is 1,000 times the largest models.
  using u128 = unsigned __int128;
  const u128 H = u128(c.hidden_size), I = u128(c.intermediate_size), V = u128(c.vocab_size);
  const u128 q = u128(c.q_dim()), kv = u128(c.kv_dim());
  const u128 per_layer = 2 * H + H * q + 2 * H * kv + q * H + 3 * H * I;
  const u128 total = 2 * V * H + u128(c.num_hidden_layers) * per_layer + H;
  SSPAN_CHECK(total < (u128(1) << 48),
              "{}: hidden_size {}, intermediate_size {}, num_hidden_layers {}, heads {}/{} x head_dim {} and "
              "vocab_size {} describe more than 2^48 parameters; no checkpoint holds that",
              src, c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
              c.num_key_value_heads, c.head_dim, c.vocab_size);
}

ModelConfig ModelConfig::from_json(std::string_view text, std::string_view src) {
  const json j = io::parse_json_strict(text, src);
  SSPAN_CHECK(j.is_object(), "{}: config is a JSON {}, not an object", src, j.type_name());
  const Fields f(j, src);
  check_architecture(f);

  ModelConfig c;
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_hidden_layers = f.positive_int("num_hidden_layers");
  c.num_attention_heads = f.positive_int("num_attention_heads");
  c.num_key_value_heads = f.positive_int("num_key_value_heads", c.num_attention_heads);
  if (f.has("head_dim")) {
    c.head_dim = f.positive_int("head_dim");
  } else {
    SSPAN_CHECK(c.hidden_size % c.num_attention_heads == 0,
                "{}: hidden_size {} is not divisible by num_attention_heads {}", src, c.hidden_size,
                c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  SSPAN_CHECK(c.head_dim % 2 == 0, "{}: head_dim {} must be even for rotary embeddings", src, c.head_dim);
  SSPAN_CHECK(c.num_attention_heads % c.num_key_value_heads == 0,
              "{}: num_key_value_heads {} does not divide num_attention_heads {}", src, c.num_key_value_heads,
              c.num_attention_heads);
  c.rms_norm_eps = f.positive_number("rms_norm_eps");
  c.rope_theta = f.positive_number("rope_theta", 10000.0);
  c.rope_scaling = parse_rope(f, &c.rope_theta);
  c.max_position_embeddings = f.positive_int("max_position_embeddings");
  c.vocab_size = f.positive_int("vocab_size");
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.bos_token_id = f.int_or("bos_token_id", 1);
  c.eos_token_ids = parse_eos(f);
  c.torch_dtype = parse_torch_dtype(f);
  for (int id : c.eos_token_ids)
    SSPAN_CHECK(id >= 0 && id < c.vocab_size, "{}: eos_token_id {} is outside the vocabulary of {}", src, id,
                c.vocab_size);
  SSPAN_CHECK(c.bos_token_id >= 0 && c.bos_token_id < c.vocab_size,
              "{}: bos_token_id {} is outside the vocabulary of {}", src, c.bos_token_id, c.vocab_size);
  check_config_sizes(c, src);
  return c;
}

ModelConfig ModelConfig::from_file(const std::filesystem::path& path) {
  // config.json is a file of a model directory: the link rule of io/untrusted_files.h holds.
  std::error_code ec;
  SSPAN_CHECK(std::filesystem::exists(path, ec), "{}: cannot open model config: no such file", path.string());
  io::check_inside_model_dir(path.parent_path(), path);
  return from_json(io::read_regular_file(path, kMaxConfigBytes, "model config"), path.string());
}

int64_t ModelConfig::num_parameters() const {
  const int64_t H = hidden_size, I = intermediate_size, V = vocab_size;
  const int64_t q = q_dim(), kv = kv_dim();
  const int64_t per_layer = 2 * H              // input and post-attention RMSNorm weights
                            + H * q + 2 * H * kv + q * H  // q, k, v, o projections
                            + 3 * H * I;       // gate, up, down
  return V * H                                 // embeddings
         + num_hidden_layers * per_layer + H   // layers and the final norm
         + (tie_word_embeddings ? 0 : V * H);  // lm_head
}

}  // namespace sspan
