#pragma once
// The ops interface the LLaMA forward pass is written against (src/model/llama.cpp).
// One implementation per device: src/cpu (the reference, fp32 accumulation) and
// src/cuda (kernels/). Every buffer is allocated before the first step; ops never
// allocate.
//
// Shapes use: n = query rows in this step (prompt tokens of a prefill, or one token per
// sequence in decode), H = hidden, I = intermediate, Hq = query heads, Hkv = kv heads,
// D = head_dim, V = vocab, L = layers, S = batch slots, C = max context.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/tensor.h"
#include "sspan/checkpoint.h"
#include "sspan/sampling.h"
#include "sspan/span.h"

namespace sspan {

// How one query row attends, stated by the caller for every row of a step.
enum class RowMode : uint8_t {
  Dense,   // causal: every position of the row's slot in [0, pos]; its span row, if the
           // step has a span, must be the dense row (SpanBatch::row_is_dense)
  Sparse,  // exactly the positions its span row lists (blocks + dense tail)
  PerHead, // per (layer, KV head) the positions of its rows in StepBatch::head_span; its
           // span row is the dense row
};

// What one forward step processes, on the host. The backend copies it to its own memory
// in set_step (one upload per step on a GPU). validate_step states the rules.
struct StepBatch {
  std::span<const int32_t> tokens;  // [n] token ids
  std::span<const int32_t> pos;     // [n] position of each token in its sequence
  std::span<const int32_t> slot;    // [n] KV-cache slot of each token's sequence
  std::span<const RowMode> mode;    // [n] how each row attends
  const SpanBatch* span = nullptr;  // [n rows] the attended sets; may be null only when every
                                    // row is Dense
  std::span<const int32_t> logit_rows;  // rows whose logits the caller wants, ascending
  // [P * L * Hkv rows] for the P PerHead rows in step order, [row][layer][KV head]: the
  // attended set of each; may be null when no row is PerHead.
  const SpanBatch* head_span = nullptr;
  // Recorded by the attention op (backends with records_attention() only):
  std::span<const int32_t> mass_rows{};   // Dense rows whose attention mass is kept, ascending
  std::span<const int32_t> query_rows{};  // rows whose last-layer query is kept, ascending
};

// What a step is checked against: the KV cache and (when known) the vocabulary.
struct StepLimits {
  int slots = 0;
  int max_ctx = 0;
  int64_t vocab = 0;  // 0: token ids are not checked
  int layers = 0, kv_heads = 0;  // rows per PerHead row of head_span (L * Hkv)
};

// The checks every backend runs in set_step, before anything reads memory through the
// step (src/model/step_batch.cpp): equal lengths of tokens, pos, slot and mode; slots and
// positions inside the cache; token ids inside the vocabulary; logit rows ascending and
// inside the step; the span valid (SpanBatch::validate) with one row per step row at the
// same position, each Dense and PerHead row encoded as the dense row; no Sparse row
// without a span; for PerHead rows a valid head_span of L * Hkv rows each at the row's
// position; mass rows Dense, mass and query rows ascending inside the step.
// Throws sspan::Error naming the first violation.
void validate_step(const StepBatch& step, const StepLimits& limits);

// Where each logit row of a step came from (the position and KV slot of its token), kept
// by a backend in set_step so that errors about logits name the token.
struct LogitRowOrigins {
  std::vector<int32_t> pos, slot;  // [m]
  void assign(const StepBatch& step);
  std::string describe(int row) const;  // "the token at position P of KV slot S"
};

// Every logit must be finite: NaN or an infinity means the activations overflowed (or a
// weight holds NaN), and no token choice over such a row is meaningful. Throws naming the
// first bad row's token and the offending value. logits: [m, vocab].
void check_logits_finite(std::span<const float> logits, int64_t vocab, int m, const LogitRowOrigins& origins);

struct KvCacheShape {
  int layers = 0, slots = 0, kv_heads = 0, max_ctx = 0, head_dim = 0;
  int q_heads = 0;  // query heads reading the cache (GQA: a multiple of kv_heads); 0: kv_heads
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  // Activations dtype: F32 on the CPU; F16/BF16 on a GPU.
  virtual DType act_dtype() const = 0;
  // KV cache element type: the activations' unless the backend keeps it otherwise.
  virtual DType kv_dtype() const { return act_dtype(); }

  // ---- memory (all before the first step) ----
  // A weight from the checkpoint, kept or converted to the backend's weight dtype.
  virtual Tensor load_weight(const TensorInfo& src) = 0;
  // A host fp32 table (e.g. RoPE inverse frequencies) made resident on the device.
  virtual Tensor load_table(std::span<const float> values) = 0;
  virtual Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) = 0;
  // KV cache for keys and for values: [L][S][Hkv][C][D] on CUDA, [L][S][C / kCpuKvBlock]
  // [Hkv][kCpuKvBlock][D] on the CPU.
  virtual void alloc_kv_cache(const KvCacheShape& shape) = 0;
  virtual size_t kv_cache_bytes() const = 0;
  // Capacity hint: the most rows and listed span blocks one step will carry. A GPU backend
  // sizes its fixed step buffers from it (growing later drops captured graphs).
  virtual void reserve_steps(int max_rows, int max_blocks) {}

  // ---- per step ----
  // Upload the step description. n <= max rows given at alloc time of activations.
  virtual void set_step(const StepBatch& step) = 0;
  // Run one forward step: upload `step`, then run `body` (every op of the forward pass
  // for this step). A GPU backend may capture body into a graph and replay it for later
  // steps of the same shape; body must then read per-step data only through set_step.
  virtual void forward_step(const StepBatch& step, const std::function<void()>& body) {
    set_step(step);
    body();
  }

  // ---- ops (shapes for the current step's n rows) ----
  // out[n, H] = table[tokens[i], :]
  virtual void embedding(const Tensor& table, Tensor& out, int n) = 0;
  // out[n, H] = x / rms(x) * w, rms over H in fp32
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out, int n) = 0;
  // y[n, O] = x[n, K] . W[O, K]^T   (fp32 accumulation)
  virtual void matmul(const Tensor& x, const Tensor& w, Tensor& y, int n) = 0;
  // The projections that read one input (q, k and v; gate and up): y_i[n, O_i] = x . w_i^T
  // for each. A backend may run them as one job (the CPU does, so its threads meet once);
  // by default each is a matmul. Every y_i equals its matmul alone.
  struct Projection {
    const Tensor& w;
    Tensor& y;
  };
  virtual void matmuls(const Tensor& x, std::initializer_list<Projection> outputs, int n) {
    for (const Projection& p : outputs) matmul(x, p.w, p.y, n);
  }
  // In place on q[n, Hq, D] and k[n, Hkv, D]: HF rotate_half, pair (i, i + D/2),
  // angle = pos * inv_freq[i].
  virtual void rope(Tensor& q, Tensor& k, const Tensor& inv_freq, int n) = 0;
  // cache[layer][slot][h][pos] = k/v[i, h, :]
  virtual void kv_append(int layer, const Tensor& k, const Tensor& v, int n) = 0;
  // out[n, Hq, D] = softmax(q . K^T / sqrt(D) over the row's span) . V, GQA by h / (Hq/Hkv)
  virtual void attention(int layer, const Tensor& q, Tensor& out, int n) = 0;
  // out[n, I] = silu(gate) * up
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& out, int n) = 0;
  // x[n, H] += y[n, H]
  virtual void add(Tensor& x, const Tensor& y, int n) = 0;
  // Copy rows[i] of x[n, H] to out[i, H] (the rows whose logits are wanted).
  virtual void gather_rows(const Tensor& x, Tensor& out, int n_out) = 0;
  // Copy logits[m, V] (fp32 on the host side) into dst.
  virtual void read_logits(const Tensor& logits, std::span<float> dst, int m) = 0;
  // Choose the next token of each of the m logit rows where the logits live, so only the
  // ids cross to the host. uniforms[i] in [0, 1) drives row i when sampling. Only the
  // temperature, top-k and top-p of `options` apply (the caller checks device_capable()).
  // Returns false when the backend leaves token selection to the host (the CPU backend).
  virtual bool sample_on_device(const Tensor& logits, int m, const SamplingOptions& options,
                                std::span<const float> uniforms, std::span<int32_t> ids) {
    return false;
  }

  // ---- what the attention op records (policies that learn from attention: `recycled`) ----
  // Whether steps may carry PerHead rows, mass rows and query rows.
  virtual bool records_attention() const { return false; }
  // After a step: mass row i's attention mass dst[L][Hkv][pos + 1], per key the softmax
  // probability summed over the KV head's query heads, as the attention op computed it.
  virtual void read_attention_mass(int i, std::span<float> dst);
  // After a step: per (layer, KV head) the min(k, pos + 1) keys of mass row i's attention
  // mass with the highest mass (of equal masses the earlier key, as span_detail::top_k_keys),
  // ascending: dst[L][Hkv][min(k, pos + 1)], selected where the mass lives so that only
  // the keys cross to the host. Returns false when the backend leaves the selection to
  // the host (read_attention_mass then; the CPU backend).
  virtual bool read_attention_top_k(int i, int32_t k, std::span<int32_t> dst) { return false; }
  // After a step: query row i's query of the last layer (after RoPE) averaged over the
  // query heads, dst[D].
  virtual void read_query(int i, std::span<float> dst);
};

// kv_dtype: the element type of the CPU KV cache (F32, F16 or BF16); attention converts
// half-precision keys and values to fp32 in registers.
std::unique_ptr<Backend> make_cpu_backend(int threads, DType kv_dtype = DType::F32);
// The CPU KV cache holds each sequence's positions in blocks of this many (every KV head of
// a block in one run of memory: cpu/span_attention.h), so its room is max_ctx rounded up.
inline constexpr int kCpuKvBlock = 16;
// The CPU KV cache type for a --kv-dtype value: "f32", "f16", "bf16" (or another spelling
// parse_dtype accepts), or "auto": f16 when the checkpoint's weights are half precision
// (fp16 or bf16), f32 when they are fp32. Throws on anything else.
DType cpu_kv_dtype(std::string_view option, const Checkpoint& checkpoint);
#ifdef SSPAN_WITH_CUDA
std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device_index);
#endif

}  // namespace sspan
