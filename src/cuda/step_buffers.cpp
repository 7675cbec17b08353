#include "cuda/step_buffers.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_config.h"

namespace sspan::cuda {

namespace {
constexpr int kMaxWordsPerBlock = 8;  // mask words of the largest block size
static_assert(kMaxWordsPerBlock * 32 == 256, "block records hold the mask words of a 256-position block");
static_assert(kPrefillTileRows == kPrefillRows, "route_rows cuts tiles of the rows one prefill CTA holds");
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
  dev_.decode_rows = base + off_decode_rows();
  dev_.block_ids = base + off_records();
  dev_.masks = reinterpret_cast<const uint32_t*>(base + off_records() + 1);
}

bool StepBuffers::upload(const StepBatch& step, const StepLimits& limits, int min_prefill_run, cudaStream_t stream) {
  validate_step(step, limits);
  SSPAN_CHECK(step.mass_rows.empty() && step.query_rows.empty() && (!step.head_span || step.head_span->rows() == 0),
              "set_step: the CUDA backend records no attention mass or queries and runs no per-(layer, KV head) "
              "spans (the recycled span policy); run that policy on the CPU backend");
  const int n = int(step.tokens.size());
  StepInfo info;
  info.rows = n;
  info.logit_rows = int(step.logit_rows.size());
  if (step.span) {
    info.block_size = step.span->block_size;
    info.words_per_block = step.span->words_per_block();
    info.nnz = int(step.span->block_ids.size());
  }
  SSPAN_CHECK(info.words_per_block <= kMaxWordsPerBlock, "set_step: {} mask words per block", info.words_per_block);
  const bool grew = reserve(n, info.nnz);
  SSPAN_CUDA_CHECK(cudaEventSynchronize(copied_));  // the previous copy has read the staging buffer

  int32_t* h = host_words();
  std::copy(step.tokens.begin(), step.tokens.end(), h + off_tokens());
  std::copy(step.pos.begin(), step.pos.end(), h + off_pos());
  std::copy(step.slot.begin(), step.slot.end(), h + off_slot());
  std::copy(step.logit_rows.begin(), step.logit_rows.end(), h + off_logit_rows());
  const int rec = 1 + info.words_per_block;
  if (step.span) {
    const SpanBatch& sb = *step.span;
    std::copy(sb.tail_start.begin(), sb.tail_start.end(), h + off_tail());
    std::copy(sb.indptr.begin(), sb.indptr.end(), h + off_indptr());
    int32_t* records = h + off_records();
    for (int e = 0; e < info.nnz; ++e) {
      records[int64_t(e) * rec] = sb.block_ids[size_t(e)];
      std::memcpy(records + int64_t(e) * rec + 1, &sb.masks[size_t(e) * size_t(info.words_per_block)],
                  sizeof(uint32_t) * size_t(info.words_per_block));
    }
  } else {  // every row Dense: no blocks, tails from 0
    std::fill(h + off_tail(), h + off_tail() + n, 0);
    std::fill(h + off_indptr(), h + off_indptr() + n + 1, 0);
  }
  info.routes = route_rows(step.pos, step.slot, step.mode, h + off_tiles(), h + off_decode_rows(), min_prefill_run);

  // The decode kernel's longest work list: 32-token sub-tiles of the listed blocks, then
  // 32-token chunks of the dense tail (split planning).
  const int items_per_block = std::max(1, info.block_size / kDecodeTileTokens);
  const int32_t* tails = h + off_tail();
  const int32_t* indptr = h + off_indptr();
  for (int i = 0; i < info.routes.decode_rows; ++i) {
    const int r = h[off_decode_rows() + i];
    const int tail_len = step.pos[size_t(r)] - tails[r] + 1;
    const int items =
        (indptr[r + 1] - indptr[r]) * items_per_block + (tail_len + kDecodeTileTokens - 1) / kDecodeTileTokens;
    info.max_decode_items = std::max(info.max_decode_items, items);
  }

  slot_seen_.assign(size_t(limits.slots), 0);
  info.distinct_slots = true;
  for (int i = 0; i < n && info.distinct_slots; ++i) {
    if (slot_seen_[size_t(step.slot[size_t(i)])]) info.distinct_slots = false;
    slot_seen_[size_t(step.slot[size_t(i)])] = 1;
  }

  dev_.record_stride = rec;
  info_ = info;
  const size_t bytes = (size_t(off_records()) + size_t(info.nnz) * size_t(rec)) * sizeof(int32_t);
  SSPAN_CUDA_CHECK(cudaMemcpyAsync(device_.get(), staging_.get(), bytes, cudaMemcpyHostToDevice, stream));
  SSPAN_CUDA_CHECK(cudaEventRecord(copied_, stream));
  return grew;
}

}  // namespace sspan::cuda
