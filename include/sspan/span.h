#pragma once
// Self-selected attention spans (see docs/span-semantics.md): grammars that find anchors
// and reference lists in the decoded text, the per-request span state that applies the
// span rule token by token, and the blocked encoding (block ids + in-block bitmasks +
// a dense tail) that the attention kernels consume. Where span-semantics.md leaves a
// choice (header before any anchor, range members, multi-line tokens), docs/grammars.md
// says what this code does.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sspan {

// A half-open range of positions [begin, end).
struct PosRange {
  int32_t begin = 0;
  int32_t end = 0;
  bool operator==(const PosRange&) const = default;
};

// How a task format writes anchors and reference lists. Built-ins: "arith", "summary".
// User grammars come from JSON (see docs/grammars.md), so a new format needs no rebuild.
struct SpanGrammar {
  enum class AnchorPlace { LineEnd, LineStart };
  std::string name;
  AnchorPlace anchor_place = AnchorPlace::LineEnd;
  std::string anchor_open = "[";   // LineEnd: "[k]"; LineStart: "k :" (open "", close ":")
  std::string anchor_close = "]";
  std::string list_open = "[";     // reference list brackets at the start of a line
  std::string list_close = "]";
  std::string list_sep = ",";      // between items
  std::string range_sep;           // "a-b" inclusive ranges; empty: no ranges
  bool relative_refs = true;       // "-1" names the previous line
  bool implicit_prev_ref_line = false;  // also attend the previous line that began with a list

  static SpanGrammar builtin(std::string_view name);  // throws for unknown names
  static SpanGrammar from_json(std::string_view json_text, std::string_view source);
  static SpanGrammar from_file(const std::filesystem::path& path);
  // The JSON form that from_json reads back to an equal grammar.
  std::string to_json() const;

  bool operator==(const SpanGrammar&) const = default;
};

// Counters of what the span rule met during a run.
struct SpanEvents {
  int64_t sparse_lines = 0;      // lines whose reference list resolved
  int64_t dense_fallbacks = 0;   // lines that began a list but fell back to dense
  int64_t unknown_anchors = 0;   // lines whose list names an anchor that does not exist (yet)
  int64_t malformed_lists = 0;   // unterminated / unparsable / empty lists
  int64_t redefined_anchors = 0; // an anchor id defined twice (the later wins)
  SpanEvents& operator+=(const SpanEvents& o);
  bool operator==(const SpanEvents&) const = default;
};

// The blocked span encoding for a batch of query rows, CSR over rows (paper Figure 4).
// Row r attends to the positions set in its listed blocks (all < tail_start[r]) and to
// every position of the dense tail [tail_start[r], pos[r]]. A dense row lists no blocks
// and has tail_start = 0. Bit j of mask word w of a block b is position b*B + 32*w + j.
struct SpanBatch {
  int block_size = 64;               // B: 16, 32, 64, 128 or 256
  std::vector<int32_t> indptr{0};    // [rows + 1]
  std::vector<int32_t> block_ids;    // [nnz], ascending within a row
  std::vector<uint32_t> masks;       // [nnz * words_per_block()]
  std::vector<int32_t> tail_start;   // [rows]
  std::vector<int32_t> pos;          // [rows], the query position t (tail is inclusive)

  int rows() const { return int(pos.size()); }
  int words_per_block() const { return block_size <= 32 ? 1 : block_size / 32; }
  void reset(int block_size);
  void add_dense_row(int32_t t);
  // Encode sorted, disjoint ranges that all end at or before tail_start.
  void add_row(const std::vector<PosRange>& before_tail, int32_t tail_start, int32_t t);
  // Encode a row given as its attended set: sorted, disjoint ranges within [0, t] whose
  // last range ends at t + 1 (t attends itself); the last range becomes the dense tail.
  void add_attended_row(std::span<const PosRange> attended, int32_t t);
  // Decode row r back into sorted, merged half-open ranges (t included).
  std::vector<PosRange> row_ranges(int r) const;
  int64_t row_count(int r) const;  // number of attended positions of row r
  // Row r is the dense row: no listed blocks and a tail from 0, i.e. every position in
  // [0, pos[r]] (causal attention).
  bool row_is_dense(int r) const;

  // The one rule set every backend applies before it reads a KV cache through this
  // encoding; throws sspan::Error naming the first violation. A valid batch has a
  // supported block size; indptr starting at 0, never decreasing, and ending at
  // block_ids.size(); words_per_block() mask words per listed block; tail_start and pos of
  // equal length with 0 <= tail_start[r] <= pos[r]; and in each row block ids that ascend
  // strictly, start before the row's tail, and set only bits of positions before it
  // (for B = 16, only the low 16 bits of a word).
  void validate() const;

 private:
  std::vector<PosRange> before_tail_;  // scratch of add_attended_row
};

bool valid_block_size(int b);

// The span of one request under some policy, token by token: what the decode loop asks
// of every policy. A new policy is one new class (and one line in SpanPolicy::parse).
class SpanTracker {
 public:
  virtual ~SpanTracker() = default;
  // Process the token at position t = tokens pushed so far (position 0 is BOS, pushed
  // with empty text). `text` is the bytes the token stands for; `in_prompt` marks
  // prompt tokens.
  virtual void push(std::string_view text, bool in_prompt) = 0;
  // About the last pushed token (all throw before the first push).
  virtual int32_t last_pos() const = 0;
  virtual bool last_sparse() const = 0;                   // attends less than [0, t]
  virtual std::vector<PosRange> last_attended() const = 0;  // sorted, merged, t included
  virtual int64_t last_count() const = 0;                 // |S_t|
  // Blocked encoding of the last token as one more row of `batch` (whose block size
  // must equal block_size()).
  virtual void append_last(SpanBatch& batch) const = 0;
  virtual int block_size() const = 0;
  virtual const SpanEvents& events() const = 0;
  double last_sparsity() const { return 1.0 - double(last_count()) / double(last_pos() + 1); }

  // ---- policies whose span differs per (layer, KV head) and is learnt from the
  // attention itself (`recycled`). The others keep these defaults.
  // The last token's keys differ per (layer, KV head): the step reads them from
  // append_last_heads, and last_attended() is their union, last_count() their mean.
  virtual bool last_per_head() const { return false; }
  // layers * kv_heads rows, [layer][kv head], all at last_pos(), onto `heads`.
  virtual void append_last_heads(SpanBatch& heads) const;
  // The step of the last token must record its attention mass (the token is dense):
  // take_mass then gets, for the token at `pos`, mass[layer][kv head][key], key in
  // [0, pos], each the attention probability of that key summed over the KV head's query
  // heads.
  virtual bool wants_mass() const { return false; }
  virtual void take_mass(int32_t pos, std::span<const float> mass, int layers, int kv_heads);
  // A tracker that keeps only the heaviest keys of that record returns their number k
  // here and may be given them instead of the whole mass (selected where the mass lives):
  // take_top_keys then gets keys[layer][kv head][min(k, pos + 1)], per (layer, KV head)
  // the keys of highest mass (of equal masses the earlier key), ascending. 0: take_mass.
  virtual int32_t mass_top_k() const { return 0; }
  virtual void take_top_keys(int32_t pos, std::span<const int32_t> keys, int layers, int kv_heads);
  // The step of the last token must record its query: take_query then gets, for the
  // token at `pos`, the last layer's query (after RoPE) averaged over the query heads,
  // [head_dim].
  virtual bool wants_query() const { return false; }
  virtual void take_query(int32_t pos, std::span<const float> query);
};

// A span policy resolved from its spec "NAME[:key=value,...]", shared by the requests
// that use it; each request gets its own tracker from start(). NAME is `dense`, a
// built-in grammar (`arith`, `summary`), a grammar .json file (a spec that names an
// existing file is always that file; else the options follow the last ':'), or one of
// the grammar-free policies of docs/policies.md:
//   window:sink=4,recent=1024            StreamingLLM: sink positions + a recent window
//   recycled:k=256,stride=16             Recycled Attention: top-k keys of the last full step
//   recycled:k=256,threshold=0.9         ... full step when the query drifts from its own
// Every policy takes `block=16|32|64|128|256`, the block size of the blocked encoding
// (default: the caller's). Unknown names and options, and option values that are not
// what the option takes, are errors.
class SpanPolicy {
 public:
  static std::shared_ptr<const SpanPolicy> parse(std::string_view spec, int default_block_size = 64);
  // A comma-separated list of specs, as command lines take it: "dense,arith,window:recent=256,
  // recycled:k=64,stride=16". An item of the form key=value (no ':') is one more option of
  // the spec before it. Each spec is returned as written (not parsed).
  static std::vector<std::string> split_list(std::string_view list);
  virtual ~SpanPolicy() = default;
  virtual std::unique_ptr<SpanTracker> start() const = 0;
  const std::string& name() const { return name_; }  // as given, without options
  int block_size() const { return block_size_; }
  virtual bool dense() const { return false; }  // every token attends [0, t]
  // The policy's trackers ask for attention mass or queries (SpanTracker::wants_mass):
  // only backends that record them can run it.
  virtual bool needs_attention_record() const { return false; }

 protected:
  SpanPolicy(std::string name, int block_size) : name_(std::move(name)), block_size_(block_size) {}

 private:
  std::string name_;
  int block_size_;
};

// The span rule of a grammar applied to one request (and, without a grammar, the dense
// policy). Holds its lines, anchors and the current line's reference list; the blocked
// form of the current line's attended set is cached so that a step inside a line only
// moves t.
class SpanState final : public SpanTracker {
 public:
  // grammar == nullptr: the `dense` policy (every token dense).
  explicit SpanState(std::shared_ptr<const SpanGrammar> grammar, int block_size = 64);
  ~SpanState();
  SpanState(SpanState&&) noexcept;
  SpanState& operator=(SpanState&&) noexcept;

  // Process the token at position t = tokens pushed so far (position 0 is BOS, pushed
  // with empty text). `text` is the bytes the token stands for; `in_prompt` marks
  // prompt tokens (the header is made of prompt lines).
  void push(std::string_view text, bool in_prompt) override;

  // About the last pushed token (all throw before the first push).
  int32_t last_pos() const override;          // t of the last pushed token
  bool last_sparse() const override;          // mode of the last pushed token
  int32_t last_line() const;                  // 0-based line index of the last pushed token
  int32_t last_tail_start() const;            // first position of the dense tail; 0 when dense
  std::vector<PosRange> last_attended() const override;
  int64_t last_count() const override;
  // Appends the line's cached blocks; derives nothing.
  void append_last(SpanBatch& batch) const override;

  int block_size() const override;
  bool dense_policy() const;  // constructed without a grammar
  const SpanEvents& events() const override;

 private:
  struct Impl;
  const Impl& pushed() const;  // the state, checked to hold at least one token
  std::unique_ptr<Impl> impl_;
};

}  // namespace sspan
