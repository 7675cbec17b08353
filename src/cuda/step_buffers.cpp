#include "cuda/step_buffers.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_config.h"
#include "cuda/span_rows.h"

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

bool StepBuffers::reserve(int max_rows, int max_blocks, int max_span_rows) {
  max_span_rows = std::max(max_span_rows, max_rows);
  if (max_rows <= cap_rows_ && max_blocks <= cap_blocks_ && max_span_rows <= cap_span_rows_) return false;
  if (!copied_) SSPAN_CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
  SSPAN_CUDA_CHECK(cudaEventSynchronize(copied_));  // the old staging buffer may still be read
  cap_rows_ = grown_capacity(cap_rows_, std::max(max_rows, 1));
  cap_blocks_ = grown_capacity(cap_blocks_, std::max(max_blocks, 1));
  cap_span_rows_ = grown_capacity(cap_span_rows_, std::max(max_span_rows, cap_rows_));
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
  dev_.head_first = base + off_head_first();
  dev_.mass_record = base + off_mass_record();
  dev_.mass_rows = base + off_mass_rows();
  dev_.query_rows = base + off_query_rows();
  dev_.logit_rows = base + off_logit_rows();
  dev_.prefill_tiles = base + off_tiles();
  dev_.decode_rows = base + off_decode_rows();
  dev_.block_ids = base + off_records();
  dev_.masks = reinterpret_cast<const uint32_t*>(base + off_records() + 1);
}

bool StepBuffers::upload(const StepBatch& step, const StepLimits& limits, int min_prefill_run, cudaStream_t stream) {
  validate_step(step, limits);
  const int n = int(step.tokens.size());
  const SpanRowsShape shape = span_rows_shape(step, limits.layers, limits.kv_heads);
  SSPAN_CHECK(shape.words_per_block <= kMaxWordsPerBlock, "set_step: {} mask words per block", shape.words_per_block);
  StepInfo info;
  info.rows = n;
  info.logit_rows = int(step.logit_rows.size());
  info.mass_rows = int(step.mass_rows.size());
  info.query_rows = int(step.query_rows.size());
  info.block_size = shape.block_size;
  info.words_per_block = shape.words_per_block;
  info.nnz = shape.nnz;
  info.span_rows = shape.span_rows;
  const bool grew = reserve(n, info.nnz, info.span_rows);
  SSPAN_CUDA_CHECK(cudaEventSynchronize(copied_));  // the previous copy has read the staging buffer

  int32_t* h = host_words();
  std::copy(step.tokens.begin(), step.tokens.end(), h + off_tokens());
  std::copy(step.pos.begin(), step.pos.end(), h + off_pos());
  std::copy(step.slot.begin(), step.slot.end(), h + off_slot());
  std::copy(step.logit_rows.begin(), step.logit_rows.end(), h + off_logit_rows());
  std::copy(step.mass_rows.begin(), step.mass_rows.end(), h + off_mass_rows());
  std::copy(step.query_rows.begin(), step.query_rows.end(), h + off_query_rows());
  int32_t* mass_record = h + off_mass_record();
  std::fill(mass_record, mass_record + n, -1);
  for (int i = 0; i < info.mass_rows; ++i) mass_record[step.mass_rows[size_t(i)]] = i;
  int32_t* tails = h + off_tail();
  int32_t* indptr = h + off_indptr();
  int32_t* head_first = h + off_head_first();
  pack_span_rows(step, shape, tails, indptr, h + off_records(), head_first);
  info.routes = route_rows(step.pos, step.slot, step.mode, h + off_tiles(), h + off_decode_rows(), min_prefill_run,
                           step.mass_rows);

  // The decode kernel's longest work list: 32-token sub-tiles of the listed blocks, then
  // 32-token chunks of the dense tail (split planning), over every span row a decode row reads.
  const int items_per_block = std::max(1, info.block_size / kDecodeTileTokens);
  for (int i = 0; i < info.routes.decode_rows; ++i) {
    const int r = h[off_decode_rows() + i];
    const int32_t pos = step.pos[size_t(r)];
    for (int l = 0; l < (head_first[r] >= 0 ? limits.layers : 1); ++l)
      for (int kvh = 0; kvh < (head_first[r] >= 0 ? limits.kv_heads : 1); ++kvh) {
        const int sr = span_row_of(head_first, r, l, limits.kv_heads, kvh);
        const int tail_len = pos - tails[sr] + 1;
        const int items = (indptr[sr + 1] - indptr[sr]) * items_per_block +
                          (tail_len + kDecodeTileTokens - 1) / kDecodeTileTokens;
        info.max_decode_items = std::max(info.max_decode_items, items);
      }
  }

  slot_seen_.assign(size_t(limits.slots), 0);
  info.distinct_slots = true;
  for (int i = 0; i < n && info.distinct_slots; ++i) {
    if (slot_seen_[size_t(step.slot[size_t(i)])]) info.distinct_slots = false;
    slot_seen_[size_t(step.slot[size_t(i)])] = 1;
  }

  dev_.record_stride = shape.record_stride();
  info_ = info;
  const size_t bytes = (size_t(off_records()) + size_t(info.nnz) * size_t(shape.record_stride())) * sizeof(int32_t);
  SSPAN_CUDA_CHECK(cudaMemcpyAsync(device_.get(), staging_.get(), bytes, cudaMemcpyHostToDevice, stream));
  SSPAN_CUDA_CHECK(cudaEventRecord(copied_, stream));
  return grew;
}

}  // namespace sspan::cuda
