#include "model/memory_plan.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

#include "common/check.h"
#include "model/backend.h"

namespace sspan {
namespace {

constexpr uint64_t kOverflow = std::numeric_limits<uint64_t>::max();

// Product of non-negative factors, kOverflow when it does not fit.
uint64_t product(std::initializer_list<int64_t> factors) {
  uint64_t p = 1;
  for (int64_t f : factors) {
    if (f < 0 || __builtin_mul_overflow(p, uint64_t(f), &p)) return kOverflow;
  }
  return p;
}

uint64_t sum(uint64_t a, uint64_t b) { return a > kOverflow - b ? kOverflow : a + b; }

std::string gb(uint64_t bytes) {
  return bytes == kOverflow ? std::string("more than 2^64 bytes") : fmt::format("{:.2f} GB", double(bytes) / 1e9);
}

}  // namespace

uint64_t MemoryPlan::host_bytes() const {
  uint64_t n = 0;
  for (const auto& b : buffers)
    if (b.on_host) n = sum(n, b.bytes);
  return n;
}

uint64_t MemoryPlan::device_bytes() const {
  uint64_t n = 0;
  for (const auto& b : buffers)
    if (!b.on_host) n = sum(n, b.bytes);
  return n;
}

MemoryPlan plan_memory(const ModelConfig& c, int rows, int logit_rows, int slots, int max_ctx, DType act,
                       DType kv, Device device) {
  const int64_t a = int64_t(dtype_size(act));
  const bool host = device == Device::CPU;
  // The CPU cache keeps whole blocks of positions (kCpuKvBlock).
  const int64_t cache_ctx = host ? (int64_t(max_ctx) + kCpuKvBlock - 1) / kCpuKvBlock * kCpuKvBlock : max_ctx;
  const std::string R = fmt::format("{} rows (the larger of --max-step-rows and the batch)", rows);
  const std::string M = fmt::format("{} logit rows", logit_rows);
  MemoryPlan p;
  // x, xn, proj [R, H]; q, att [R, Hq*D]; k, v [R, Hkv*D]; gate, up, ffn [R, I]; last [M, H].
  p.buffers.push_back({"hidden-state activations", fmt::format("{} x hidden_size {} x 3", R, c.hidden_size),
                       product({rows, c.hidden_size, 3, a}), host});
  p.buffers.push_back({"attention activations",
                       fmt::format("{} x (num_attention_heads {} x 2 + num_key_value_heads {} x 2) x head_dim {}", R,
                                   c.num_attention_heads, c.num_key_value_heads, c.head_dim),
                       sum(product({rows, c.num_attention_heads, c.head_dim, 2, a}),
                           product({rows, c.num_key_value_heads, c.head_dim, 2, a})),
                       host});
  p.buffers.push_back({"MLP activations", fmt::format("{} x intermediate_size {} x 3", R, c.intermediate_size),
                       product({rows, c.intermediate_size, 3, a}), host});
  p.buffers.push_back({"logits", fmt::format("{} x vocab_size {} (fp32)", M, c.vocab_size),
                       sum(product({logit_rows, c.hidden_size, a}), product({logit_rows, c.vocab_size, 4})), host});
  p.buffers.push_back({"host copy of the logits", fmt::format("{} x vocab_size {} (fp32)", M, c.vocab_size),
                       product({logit_rows, c.vocab_size, 4}), true});
  p.buffers.push_back(
      {"KV cache",
       fmt::format("keys and values x num_hidden_layers {} x batch {} x num_key_value_heads {} x --max-context {} x "
                   "head_dim {}",
                   c.num_hidden_layers, slots, c.num_key_value_heads, max_ctx, c.head_dim),
       product({2, c.num_hidden_layers, slots, c.num_key_value_heads, cache_ctx, c.head_dim, int64_t(dtype_size(kv))}),
       host});
  return p;
}

uint64_t host_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  uint64_t limit = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : kOverflow;
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) limit = std::min<uint64_t>(limit, rl.rlim_cur);
  return limit;
}

std::string MemoryPlan::summary() const {
  std::vector<BufferBytes> host;
  for (const auto& b : buffers)
    if (b.on_host) host.push_back(b);
  std::sort(host.begin(), host.end(), [](const auto& x, const auto& y) { return x.bytes > y.bytes; });
  std::string s = fmt::format("{} in all", gb(host_bytes()));
  for (size_t i = 0; i < host.size() && i < 3; ++i)
    s += fmt::format("; {} {} ({})", host[i].name, gb(host[i].bytes), host[i].driven_by);
  return s;
}

void check_memory_plan(const MemoryPlan& plan, uint64_t host_limit, std::string_view config_source) {
  SSPAN_CHECK(plan.host_bytes() <= host_limit,
              "{}: the model's buffers need more host memory than the {} available: {}. Lower the options named "
              "(--max-context, --max-step-rows, the batch size) or check the config",
              config_source, gb(host_limit), plan.summary());
}

}  // namespace sspan
