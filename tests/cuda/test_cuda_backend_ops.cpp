// Every op of the CUDA backend against the CPU backend on fresh random inputs, outputs
// poisoned with NaN before each run, fp16 and bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "backend_pair.h"
#include "sspan/error.h"

namespace sspan::test {
namespace {

class CudaOpsTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    SSPAN_REQUIRE_CUDA();
    pair_ = std::make_unique<BackendPair>(GetParam());
    pair_->alloc_kv_cache({2, 4, 2, 512, 64});
  }
  DType dt() const { return GetParam(); }
  // A step of n rows on distinct slots' positions (tokens < vocab).
  void decode_step(int n, int vocab = 100) {
    tokens_.resize(size_t(n));
    pos_.resize(size_t(n));
    slot_.resize(size_t(n));
    for (int i = 0; i < n; ++i) {
      tokens_[size_t(i)] = int32_t(rng_() % unsigned(vocab));
      pos_[size_t(i)] = int32_t(rng_() % 500u);
      slot_[size_t(i)] = i % 4;
    }
    mode_.assign(size_t(n), RowMode::Dense);
    StepBatch step{tokens_, pos_, slot_, mode_, nullptr, logit_rows_};
    pair_->set_step(step);
  }

  std::mt19937 rng_{1234};
  std::unique_ptr<BackendPair> pair_;
  std::vector<int32_t> tokens_, pos_, slot_, logit_rows_;
  std::vector<RowMode> mode_;
};

TEST_P(CudaOpsTest, Embedding) {
  const int n = 7, vocab = 100, hidden = 96;
  auto table = pair_->weight({vocab, hidden}, random_values(rng_, size_t(vocab) * hidden, dt()));
  auto out = pair_->activation({n, hidden});
  decode_step(n, vocab);
  pair_->cpu->embedding(table.cpu, out.cpu, n);
  pair_->gpu->embedding(table.gpu, out.gpu, n);
  expect_close(pair_->gpu_values(out), pair_->cpu_values(out), dt(), "embedding");
}

TEST_P(CudaOpsTest, RmsNormWithWeightOrFp32TableInPlace) {
  const int n = 5, hidden = 4096;
  const auto x_values = random_values(rng_, size_t(n) * hidden, dt(), 3.f);
  const auto w_values = random_values(rng_, hidden, dt());
  auto x = pair_->activation({n, hidden}, x_values);
  auto w = pair_->weight({hidden}, w_values);
  TensorPair table{pair_->cpu->load_table(w_values), pair_->gpu->load_table(w_values)};  // as the model keeps norms
  auto out = pair_->activation({n, hidden});
  decode_step(n);
  pair_->cpu->rms_norm(x.cpu, w.cpu, 1e-5f, out.cpu, n);
  pair_->gpu->rms_norm(x.gpu, w.gpu, 1e-5f, out.gpu, n);
  expect_close(pair_->gpu_values(out), pair_->cpu_values(out), dt(), "rms_norm");
  pair_->cpu->rms_norm(x.cpu, table.cpu, 1e-5f, x.cpu, n);  // in place, as for the final norm
  pair_->gpu->rms_norm(x.gpu, table.gpu, 1e-5f, x.gpu, n);
  expect_close(pair_->gpu_values(x), pair_->cpu_values(x), dt(), "rms_norm in place, fp32 weights");
}

TEST_P(CudaOpsTest, MatmulToActivationAndToFp32) {
  const int n = 9, k = 320, o = 200;
  auto x = pair_->activation({n, k}, random_values(rng_, size_t(n) * k, dt()));
  auto w = pair_->weight({o, k}, random_values(rng_, size_t(o) * k, dt(), 0.2f));
  auto y = pair_->activation({n, o});
  auto y32 = pair_->activation_f32({n, o});
  decode_step(n);
  pair_->cpu->matmul(x.cpu, w.cpu, y.cpu, n);
  pair_->gpu->matmul(x.gpu, w.gpu, y.gpu, n);
  pair_->cpu->matmul(x.cpu, w.cpu, y32.cpu, n);
  pair_->gpu->matmul(x.gpu, w.gpu, y32.gpu, n);
  expect_close(pair_->gpu_values(y), pair_->cpu_values(y), dt(), "matmul");
  expect_close(pair_->gpu_values(y32), pair_->cpu_values(y32), dt(), "matmul fp32 out");
}

TEST_P(CudaOpsTest, Rope) {
  const int n = 6, hq = 8, hkv = 2, d = 64;
  std::vector<float> inv(d / 2);
  for (int i = 0; i < d / 2; ++i) inv[size_t(i)] = std::pow(10000.f, -2.f * float(i) / float(d));
  TensorPair inv_freq{pair_->cpu->load_table(inv), pair_->gpu->load_table(inv)};
  auto q = pair_->activation({n, hq, d}, random_values(rng_, size_t(n) * hq * d, dt()));
  auto k = pair_->activation({n, hkv, d}, random_values(rng_, size_t(n) * hkv * d, dt()));
  decode_step(n);
  pair_->cpu->rope(q.cpu, k.cpu, inv_freq.cpu, n);
  pair_->gpu->rope(q.gpu, k.gpu, inv_freq.gpu, n);
  expect_close(pair_->gpu_values(q), pair_->cpu_values(q), dt(), "rope q");
  expect_close(pair_->gpu_values(k), pair_->cpu_values(k), dt(), "rope k");
}

TEST_P(CudaOpsTest, SwigluAndAdd) {
  const int n = 4, width = 1000;
  auto gate = pair_->activation({n, width}, random_values(rng_, size_t(n) * width, dt(), 4.f));
  auto up = pair_->activation({n, width}, random_values(rng_, size_t(n) * width, dt()));
  auto out = pair_->activation({n, width});
  auto x = pair_->activation({n, width}, random_values(rng_, size_t(n) * width, dt()));
  decode_step(n);
  pair_->cpu->swiglu(gate.cpu, up.cpu, out.cpu, n);
  pair_->gpu->swiglu(gate.gpu, up.gpu, out.gpu, n);
  expect_close(pair_->gpu_values(out), pair_->cpu_values(out), dt(), "swiglu");
  pair_->cpu->add(x.cpu, out.cpu, n);
  pair_->gpu->add(x.gpu, out.gpu, n);
  expect_close(pair_->gpu_values(x), pair_->cpu_values(x), dt(), "add");
}

TEST_P(CudaOpsTest, GatherRowsAndReadLogits) {
  const int n = 6, vocab = 300;
  logit_rows_ = {1, 4, 5};
  const int m = int(logit_rows_.size());
  auto x = pair_->activation({n, vocab}, random_values(rng_, size_t(n) * vocab, dt(), 8.f));
  auto picked = pair_->activation({m, vocab});
  decode_step(n);
  pair_->cpu->gather_rows(x.cpu, picked.cpu, m);
  pair_->gpu->gather_rows(x.gpu, picked.gpu, m);
  std::vector<float> cpu_logits(size_t(m) * vocab), gpu_logits(size_t(m) * vocab, NAN);
  pair_->cpu->read_logits(picked.cpu, cpu_logits, m);
  pair_->gpu->read_logits(picked.gpu, gpu_logits, m);
  expect_close(gpu_logits, cpu_logits, dt(), "gather_rows + read_logits");
}

TEST_P(CudaOpsTest, WeightsFromHalfCheckpointTensors) {
  // A checkpoint tensor stored as F16 or BF16 bits, uploaded and converted by the device.
  const int rows = 3, cols = 5000;
  for (DType src : {DType::F16, DType::BF16, DType::F32}) {
    std::vector<float> values = random_values(rng_, size_t(rows) * cols, src);
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i)
      bits[i] = src == DType::F16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
    TensorInfo info;
    info.name = "w";
    info.dtype = src;
    info.shape = {rows, cols};
    info.nbytes = values.size() * dtype_size(src);
    info.data = src == DType::F32 ? reinterpret_cast<const std::byte*>(values.data())
                                  : reinterpret_cast<const std::byte*>(bits.data());
    Tensor w = pair_->gpu->load_weight(info);
    std::vector<float> expect(values.size());
    for (size_t i = 0; i < values.size(); ++i) expect[i] = round_to(dt(), values[i]);
    EXPECT_EQ(download_as(dt(), w.data, values.size()), expect) << "weight from " << dtype_name(src);
  }
}

TEST_P(CudaOpsTest, BadStepsAreErrors) {
  std::vector<int32_t> tok{1}, pos{600}, slot{0};
  const std::vector<RowMode> dense{RowMode::Dense}, sparse{RowMode::Sparse};
  EXPECT_THROW(pair_->gpu->set_step(StepBatch{tok, pos, slot, dense, nullptr, {}}), Error);  // pos >= C
  pos = {3};
  slot = {9};
  EXPECT_THROW(pair_->gpu->set_step(StepBatch{tok, pos, slot, dense, nullptr, {}}), Error);  // slot >= S
  slot = {0};
  EXPECT_THROW(pair_->gpu->set_step(StepBatch{tok, pos, slot, {}, nullptr, {}}), Error);      // no row modes
  EXPECT_THROW(pair_->gpu->set_step(StepBatch{tok, pos, slot, sparse, nullptr, {}}), Error);  // Sparse, no span
  auto table = pair_->weight({10, 64}, random_values(rng_, 640, dt()));
  auto out = pair_->activation({1, 64});
  tok = {10};
  pair_->gpu->set_step(StepBatch{tok, pos, slot, dense, nullptr, {}});
  EXPECT_THROW(pair_->gpu->embedding(table.gpu, out.gpu, 1), Error);  // token outside the vocabulary
  EXPECT_THROW(pair_->gpu->set_step(StepBatch{tok, pos, slot, dense, nullptr, {}}), Error);  // now checked here too
}

TEST_P(CudaOpsTest, BadSpansAreErrors) {
  // The same rules as the CPU backend (validate_step, SpanBatch::validate).
  std::vector<int32_t> tok{1, 2}, pos{100, 200}, slot{0, 1};
  const std::vector<RowMode> mode{RowMode::Sparse, RowMode::Sparse};
  SpanBatch span;
  span.reset(16);
  span.add_row({{0, 10}}, 90, 100);
  auto step = [&](const SpanBatch& s, std::span<const RowMode> m) { return StepBatch{tok, pos, slot, m, &s, {}}; };
  EXPECT_THROW(pair_->gpu->set_step(step(span, mode)), Error);  // 1 span row for 2 rows
  span.add_row({{16, 40}}, 150, 200);
  pair_->set_step(step(span, mode));  // well formed, on both backends
  const std::vector<RowMode> dense_first{RowMode::Dense, RowMode::Sparse};
  EXPECT_THROW(pair_->gpu->set_step(step(span, dense_first)), Error);  // a Dense row with a sparse span row
  EXPECT_THROW(pair_->cpu->set_step(step(span, dense_first)), Error);
  SpanBatch late = span;
  late.masks[0] = 1u << 15;  // row 0 attends position 5 * 16 + 15 = 95, past its tail start 90
  late.block_ids[0] = 5;
  EXPECT_THROW(pair_->gpu->set_step(step(late, mode)), Error);
  SpanBatch unsorted = span;
  ASSERT_EQ(unsorted.block_ids, (std::vector<int32_t>{0, 1, 2}));
  std::swap(unsorted.block_ids[1], unsorted.block_ids[2]);  // row 1 lists blocks 1, 2: now 2, 1
  EXPECT_THROW(pair_->gpu->set_step(step(unsorted, mode)), Error);
  SpanBatch moved = span;
  moved.pos[1] = 199;
  EXPECT_THROW(pair_->gpu->set_step(step(moved, mode)), Error);  // span pos != token pos
}

TEST_P(CudaOpsTest, UnsupportedHeadDimIsRefusedByName) {
  auto gpu = make_cuda_backend(dt(), 0, {});
  try {
    gpu->alloc_kv_cache({1, 1, 1, 16, 112});
    ADD_FAILURE() << "head_dim 112 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim 112"), std::string::npos) << e.what();
  }
  for (int d : {32, 48, 64, 80, 96, 128}) EXPECT_NO_THROW(gpu->alloc_kv_cache({1, 1, 1, 16, d})) << d;
}

TEST_P(CudaOpsTest, NonFiniteLogitsAreAnErrorNamingTheToken) {
  const int n = 2, vocab = 50;
  logit_rows_ = {0, 1};
  decode_step(n);
  auto logits = pair_->activation_f32({n, vocab});
  std::vector<float> values(size_t(n) * vocab, 0.25f);
  values[vocab + 7] = NAN;
  upload_as(DType::F32, values, logits.gpu.data);
  std::vector<float> host(values.size());
  try {
    pair_->gpu->read_logits(logits.gpu, host, n);
    ADD_FAILURE() << "NaN logits read without an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("position " + std::to_string(pos_[1])), std::string::npos) << e.what();
  }
  std::vector<int32_t> ids(n);
  for (float temperature : {0.f, 0.8f}) {
    SamplingOptions cfg;
    cfg.temperature = temperature;
    const std::vector<float> u{0.5f, 0.5f};
    EXPECT_THROW(pair_->gpu->sample_on_device(logits.gpu, n, cfg, u, ids), Error) << "temperature " << temperature;
  }
  values[vocab + 7] = 1.f;
  upload_as(DType::F32, values, logits.gpu.data);
  ASSERT_TRUE(pair_->gpu->sample_on_device(logits.gpu, n, {}, {}, ids));
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 7}));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOpsTest, ::testing::Values(DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace sspan::test
