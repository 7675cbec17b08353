#include "cuda/step_buffers.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "cuda/cuda_check.h"

namespace sspan::cuda {

namespace {
constexpr int kMaxWordsPerBlock = 8;  // B = 256

// Highest position set in a block entry, or -1 when its mask is empty.
int64_t last_set_position(int32_t block, const uint32_t* words, int w_count, int block_size) {
  for (int w = w_count - 1; w >= 0; --w) {
    uint32_t bits = words[w];
    if (block_size < 32) bits &= (1u << block_size) - 1u;
    if (bits) return int64_t(block) * block_size + 32 * w + (31 - __builtin_clz(bits));
  }
  return -1;
}

void validate_span(const StepBatch& step, const SpanBatch& sb) {
  const int n = int(step.tokens.size());
  const int b = sb.block_size;
  SSPAN_CHECK(b == 16 || b == 32 || b == 64 || b == 128 || b == 256, "set_step: span block size {} (16, 32, 64, 128 or 256)",
              sb.block_size);
  SSPAN_CHECK(sb.rows() == n && int(sb.tail_start.size()) == n && int(sb.indptr.size()) == n + 1,
              "set_step: span batch has {} rows ({} tail starts, {} offsets) for a step of {} rows", sb.rows(),
              sb.tail_start.size(), sb.indptr.size(), n);
  const int w_count = sb.words_per_block();
  SSPAN_CHECK(sb.indptr[0] == 0 && sb.indptr[n] == int(sb.block_ids.size()) &&
                  sb.masks.size() == sb.block_ids.size() * size_t(w_count),
              "set_step: span CSR is inconsistent (indptr ends at {}, {} block ids, {} mask words, {} words per block)",
              sb.indptr[n], sb.block_ids.size(), sb.masks.size(), w_count);
  for (int r = 0; r < n; ++r) {
    SSPAN_CHECK(sb.pos[r] == step.pos[r], "set_step: row {} has span position {} but token position {}", r,
                sb.pos[r], step.pos[r]);
    SSPAN_CHECK(sb.tail_start[r] >= 0 && sb.tail_start[r] <= sb.pos[r],
                "set_step: row {} has tail start {} outside [0, {}]", r, sb.tail_start[r], sb.pos[r]);
    SSPAN_CHECK(sb.indptr[r] <= sb.indptr[r + 1], "set_step: span offsets decrease at row {}", r);
    int32_t prev = -1;
    for (int e = sb.indptr[r]; e < sb.indptr[r + 1]; ++e) {
      const int32_t b = sb.block_ids[e];
      SSPAN_CHECK(b > prev, "set_step: row {} lists block {} after block {} (ids must ascend)", r, b, prev);
      prev = b;
      const int64_t last = last_set_position(b, &sb.masks[size_t(e) * w_count], w_count, sb.block_size);
      SSPAN_CHECK(last < sb.tail_start[r], "set_step: row {} block {} attends position {} at or after its tail start {}",
                  r, b, last, sb.tail_start[r]);
    }
  }
}
}  // namespace

StepBuffers::~StepBuffers() {
  if (copied_) cudaEventDestroy(copied_);
}

int64_t StepBuffers::total_words() const { return off_records() + int64_t(cap_blocks_) * (1 + kMaxWordsPerBlock); }

bool StepBuffers::reserve(int max_rows, int max_blocks) {
  if (max_rows <= cap_rows_ && max_blocks <= cap_blocks_) return false;
  if (!copied_) SSPAN_CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
  SSPAN_CUDA_CHECK(cudaEventSynchronize(copied_));  // the old staging buffer may still be read
  cap_rows_ = std::max({cap_rows_, max_rows, 1});
  cap_blocks_ = std::max({cap_blocks_, max_blocks, 1});
  const size_t bytes = size_t(total_words()) * sizeof(int32_t);
  staging_ = PinnedBuffer(bytes);
  device_ = DeviceBuffer(bytes, "step metadata");
  std::memset(staging_.get(), 0, bytes);
  point_device();
  return true;
}

void StepBuffers::point_device() {
  const int32_t* base = device_.as<int32_t>();
  dev_.tokens = base + off_tokens();
  dev_.pos = base + off_pos();
  dev_.slot = base + off_slot();
  dev_.tail_start = base + off_tail();
  dev_.indptr = base + off_indptr();
  dev_.logit_rows = base + off_logit_rows();
  dev_.prefill_tiles = base + off_tiles();
  dev_.block_ids = base + off_records();
  dev_.masks = reinterpret_cast<const uint32_t*>(base + off_records() + 1);
}

bool StepBuffers::upload(const StepBatch& step, const StepLimits& limits, cudaStream_t stream) {
  const int n = int(step.tokens.size());
  SSPAN_CHECK(step.pos.size() == size_t(n) && step.slot.size() == size_t(n),
              "set_step: {} tokens but {} positions and {} slots", n, step.pos.size(), step.slot.size());
  SSPAN_CHECK(limits.slots > 0, "set_step: the KV cache is not allocated (call alloc_kv_cache first)");
  for (int i = 0; i < n; ++i) {
    SSPAN_CHECK(step.pos[i] >= 0 && step.pos[i] < limits.max_ctx, "set_step: row {} position {} outside the context [0, {})",
                i, step.pos[i], limits.max_ctx);
    SSPAN_CHECK(step.slot[i] >= 0 && step.slot[i] < limits.slots, "set_step: row {} slot {} outside [0, {})", i,
                step.slot[i], limits.slots);
    SSPAN_CHECK(limits.vocab == 0 || (step.tokens[i] >= 0 && step.tokens[i] < limits.vocab),
                "set_step: row {} token id {} outside the vocabulary [0, {})", i, step.tokens[i], limits.vocab);
  }
  const int m = int(step.logit_rows.size());
  for (int i = 0; i < m; ++i)
    SSPAN_CHECK(step.logit_rows[i] >= 0 && step.logit_rows[i] < n && (i == 0 || step.logit_rows[i] > step.logit_rows[i - 1]),
                "set_step: logit row {} = {} (rows must ascend within [0, {}))", i, step.logit_rows[i], n);

  StepInfo info;
  info.rows = n;
  info.logit_rows = m;
  info.has_span = step.span != nullptr;
  if (info.has_span) {
    validate_span(step, *step.span);
    info.block_size = step.span->block_size;
    info.words_per_block = step.span->words_per_block();
    info.nnz = int(step.span->block_ids.size());
  } else {
    info.words_per_block = 64 / 32;
  }
  const bool grew = reserve(n, info.nnz);
  SSPAN_CUDA_CHECK(cudaEventSynchronize(copied_));  // the previous copy has read the staging buffer

  int32_t* h = host_words();
  std::copy(step.tokens.begin(), step.tokens.end(), h + off_tokens());
  std::copy(step.pos.begin(), step.pos.end(), h + off_pos());
  std::copy(step.slot.begin(), step.slot.end(), h + off_slot());
  std::copy(step.logit_rows.begin(), step.logit_rows.end(), h + off_logit_rows());
  const int rec = 1 + info.words_per_block;
  if (info.has_span) {
    const SpanBatch& sb = *step.span;
    std::copy(sb.tail_start.begin(), sb.tail_start.end(), h + off_tail());
    std::copy(sb.indptr.begin(), sb.indptr.end(), h + off_indptr());
    int32_t* records = h + off_records();
    for (int e = 0; e < info.nnz; ++e) {
      records[int64_t(e) * rec] = sb.block_ids[e];
      std::memcpy(records + int64_t(e) * rec + 1, &sb.masks[size_t(e) * info.words_per_block],
                  sizeof(uint32_t) * info.words_per_block);
    }
  } else {
    std::fill(h + off_tail(), h + off_tail() + n, 0);
    std::fill(h + off_indptr(), h + off_indptr() + n + 1, 0);
    // Dense rows as prefill tiles: runs of one slot at consecutive positions, cut at 64 rows.
    int32_t* tiles = h + off_tiles();
    for (int i = 0; i < n;) {
      int len = 1;
      while (i + len < n && len < kPrefillTileRows && step.slot[i + len] == step.slot[i] &&
             step.pos[i + len] == step.pos[i + len - 1] + 1)
        ++len;
      tiles[2 * info.prefill_tiles] = i;
      tiles[2 * info.prefill_tiles + 1] = len;
      ++info.prefill_tiles;
      info.max_tile_rows = std::max(info.max_tile_rows, len);
      i += len;
    }
  }
  std::vector<char> seen(size_t(limits.slots), 0);
  info.distinct_slots = true;
  for (int i = 0; i < n && info.distinct_slots; ++i) {
    if (seen[size_t(step.slot[i])]) info.distinct_slots = false;
    seen[size_t(step.slot[i])] = 1;
  }

  dev_.record_stride = rec;
  info_ = info;
  const size_t bytes = (size_t(off_records()) + size_t(info.nnz) * rec) * sizeof(int32_t);
  SSPAN_CUDA_CHECK(cudaMemcpyAsync(device_.get(), staging_.get(), bytes, cudaMemcpyHostToDevice, stream));
  SSPAN_CUDA_CHECK(cudaEventRecord(copied_, stream));
  return grew;
}

}  // namespace sspan::cuda
