// The attention kernels' launch configuration for real devices' limits: shared-memory
// layouts, which configuration fits, the decode split count, and per-device attributes.
#include "cuda/kernel_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <limits>
#include <utility>
#include <stdexcept>
#include <vector>

#include "sspan/error.h"

namespace sspan::cuda {
namespace {

// cudaDeviceGetAttribute values of three device classes (CUDA programming guide, table of
// compute capabilities): H100 SXM (sm_90), A100 (sm_80) and the 99 KB parts (sm_86/sm_89:
// A10, L4, L40S, RTX 30/40).
constexpr DeviceLimits kH100{132, 232448, 233472, 1024, 32};
constexpr DeviceLimits kA100{108, 166912, 167936, 1024, 32};
constexpr DeviceLimits kL4{58, 101376, 102400, 1024, 24};

TEST(KernelConfig, HeadDims) {
  for (int d : {32, 48, 64, 80, 96, 128}) EXPECT_TRUE(head_dim_supported(d)) << d;
  for (int d : {0, 16, 40, 112, 160, 256}) EXPECT_FALSE(head_dim_supported(d)) << d;
}

TEST(KernelConfig, SharedLayoutsMatchTheKernelsArithmetic) {
  // Decode, D = 128, fp16, 4 warps: 4 x 2 stages x (K + V) x 32 x 136 x 2 B of tiles, the
  // group's fp32 queries (8 x 128 x 4 B) and 4 x 32 staged items of 8 B.
  const DecodeSmemLayout d4 = decode_smem_layout(128, 2, 4);
  EXPECT_EQ(d4.q, 139264u);
  EXPECT_EQ(d4.items, 139264u + 4096u);
  EXPECT_EQ(d4.bytes, 139264u + 4096u + 1024u);
  EXPECT_EQ(decode_smem_layout(128, 2, 2).bytes, 69632u + 4096u + 512u);
  // Prefill, D = 128, 64 keys: 113,408 B; 32 keys: 83,712 B. Every region 32-byte aligned.
  const PrefillSmemLayout p64 = prefill_smem_layout(128, 2, 64), p32 = prefill_smem_layout(128, 2, 32);
  EXPECT_EQ(p64.bytes, 113408u);
  EXPECT_EQ(p32.bytes, 83712u);
  for (int dim : {32, 48, 64, 80, 96, 128})
    for (int keys : {32, 64}) {
      const PrefillSmemLayout l = prefill_smem_layout(dim, 2, keys);
      for (size_t off : {l.q, l.k, l.v, l.s, l.p, l.o, l.m}) EXPECT_EQ(off % 32, 0u) << dim << "/" << keys;
      EXPECT_EQ(l.qkv_ld % 8, 0) << "wmma needs a leading dimension that is a multiple of 8";
      const DecodeSmemLayout dl = decode_smem_layout(dim, 2, 4);
      EXPECT_EQ(dl.q % 16, 0u);
      EXPECT_EQ((dim + kDecodePad) * 2 % 16, 0) << "16-byte cp.async rows";
    }
}

TEST(KernelConfig, DecodeWarpsPerDevice) {
  // H100, D = 128: 4 warps fit one CTA per SM (4 warps resident); 2 warps fit three (6).
  EXPECT_EQ(ctas_per_sm_by_shared(kH100, decode_smem_layout(128, 2, 4).bytes), 1);
  EXPECT_EQ(ctas_per_sm_by_shared(kH100, decode_smem_layout(128, 2, 2).bytes), 3);
  EXPECT_EQ(choose_decode_warps(kH100, 128, 2), 2);
  // A100, D = 128: 1 x 4 or 2 x 2 warps: a tie, more CTAs win.
  EXPECT_EQ(choose_decode_warps(kA100, 128, 2), 2);
  // 99 KB parts: 4 warps do not fit at D = 128 (144,384 B), 2 do.
  EXPECT_GT(decode_smem_layout(128, 2, 4).bytes, size_t(kL4.max_smem_per_block_optin));
  EXPECT_EQ(choose_decode_warps(kL4, 128, 2), 2);
  // D = 64 on an H100: 3 x 4 warps beat 5 x 2.
  EXPECT_EQ(choose_decode_warps(kH100, 64, 2), 4);
  // Every supported head dim has a configuration on every device class.
  for (int dim : {32, 48, 64, 80, 96, 128})
    for (const DeviceLimits& dev : {kH100, kA100, kL4}) EXPECT_NO_THROW(choose_decode_warps(dev, dim, 2)) << dim;
  // A device with 48 KB per block has none at D = 128; unsupported dims are errors too.
  const DeviceLimits small{10, 49152, 65536, 1024, 16};
  EXPECT_THROW(choose_decode_warps(small, 128, 2), Error);
  EXPECT_THROW(choose_decode_warps(kH100, 112, 2), Error);
}

TEST(KernelConfig, PrefillKeysPerDevice) {
  EXPECT_EQ(choose_prefill_keys(kH100, 128, 2), 64);
  EXPECT_EQ(choose_prefill_keys(kA100, 128, 2), 64);
  EXPECT_EQ(choose_prefill_keys(kL4, 128, 2), 32);  // 113,408 B does not fit 99 KB
  EXPECT_EQ(choose_prefill_keys(kL4, 64, 2), 64);
  const DeviceLimits small{10, 49152, 65536, 1024, 16};
  EXPECT_THROW(choose_prefill_keys(small, 128, 2), Error);
}

TEST(KernelConfig, DecodeMathByGroup) {
  EXPECT_EQ(choose_decode_math(1), DecodeMath::Scalar);
  EXPECT_EQ(choose_decode_math(2), DecodeMath::Scalar);
  EXPECT_EQ(choose_decode_math(4), DecodeMath::TensorCore);
  EXPECT_EQ(choose_decode_math(8), DecodeMath::TensorCore);
}

TEST(KernelConfig, SplitsFillOneWave) {
  // Batch 64 x 32 KV heads = 2,048 CTAs on 396 resident: no split.
  EXPECT_EQ(choose_decode_splits({2048, 396, 256, 64}), 1);
  // Batch 1 x 32 KV heads on 132 SMs x 3: 11 splits = 352 CTAs (0.89 of a wave) is the
  // fewest within 85% of the best efficiency (12 splits: 384 CTAs, 0.97).
  EXPECT_EQ(choose_decode_splits({32, 396, 256, 64}), 11);
  // Batch 4 x 8 KV heads (GQA) on 132 x 2 = 264: 8 splits = 256 CTAs (0.97; 7 give 0.85).
  EXPECT_EQ(choose_decode_splits({32, 264, 1000, 64}), 8);
  // Short rows cap the split count: 5 items allow 2 splits of >= 2 items.
  EXPECT_EQ(choose_decode_splits({8, 264, 5, 64}), 2);
  EXPECT_EQ(choose_decode_splits({8, 264, 1, 64}), 1);
  // The split-state capacity caps it too.
  EXPECT_EQ(choose_decode_splits({1, 264, 4096, 3}), 3);
  // Degenerate inputs never give 0.
  EXPECT_EQ(choose_decode_splits({0, 264, 10, 64}), 1);
  EXPECT_EQ(choose_decode_splits({4, 0, 10, 64}), 1);
}

TEST(KernelConfig, SplitChoiceIsNeverWorseThanNoSplit) {
  for (int ctas : {1, 2, 3, 7, 16, 33, 100, 200, 300})
    for (int resident : {108, 132, 264, 396})
      for (int items : {1, 4, 17, 64, 256, 1024}) {
        const int s = choose_decode_splits({ctas, resident, items, kMaxDecodeSplits});
        ASSERT_GE(s, 1);
        ASSERT_LE(s, kMaxDecodeSplits);
        ASSERT_LE(s, std::max(1, items / kMinItemsPerSplit));
        if (ctas >= 0.8 * resident) {
          ASSERT_EQ(s, 1);
        }
        // The chosen count keeps at least the single-split wave efficiency.
        auto eff = [&](int k) {
          const double w = double(ctas) * k / resident;
          return w / std::ceil(w);
        };
        ASSERT_GE(eff(s) + 1e-9, 0.85 * eff(1)) << ctas << " " << resident << " " << items;
      }
}

// The backend's split-state buffers: 2 waves of resident CTAs x kDecodeMaxGroup states.
int64_t held_states(const DeviceLimits& d, int ctas_per_sm) {
  return int64_t(2) * d.sm_count * ctas_per_sm * kDecodeMaxGroup;
}

TEST(KernelConfig, OneSplitNeedsNoSplitStates) {
  // LLaMA-7B heads (32/32) on an H100 with 3 decode CTAs per SM: 6,336 states. A 512-row
  // prompt chunk of sparse rows runs in one split, writing its output directly.
  const int64_t held = held_states(kH100, 3);
  EXPECT_EQ(held, 6336);
  EXPECT_TRUE(decode_split_states_fit(512, 32, 1, held));
  EXPECT_EQ(plan_decode_splits(512, 32, held, 132 * 3, 256), 1);
  EXPECT_TRUE(decode_split_states_fit(99, 32, 2, held));
  EXPECT_FALSE(decode_split_states_fit(100, 32, 2, held));
}

TEST(KernelConfig, PlannedSplitsAlwaysFitTheBuffers) {
  for (const auto& [limits, per_sm] : {std::pair{kH100, 3}, std::pair{kA100, 2}, std::pair{kL4, 1}}) {
    const int64_t held = held_states(limits, per_sm);
    const int resident = limits.sm_count * per_sm;
    for (int kv_heads : {1, 4, 8, 32})
      for (int group : {1, 2, 4, 8})
        for (int rows : {0, 1, 2, 3, 7, 16, 48, 64, 100, 200, 513, 4096})
          for (int items : {1, 2, 5, 64, 256, 4096}) {
            const int splits = plan_decode_splits(rows, kv_heads, held, resident, items);
            ASSERT_GE(splits, 1);
            ASSERT_LE(splits, kMaxDecodeSplits);
            ASSERT_TRUE(decode_split_states_fit(rows, kv_heads * group, splits, held))
                << rows << " rows, " << kv_heads << " KV heads x " << group << ", " << items << " items: " << splits;
          }
  }
  // A long row at batch 1 on a big device is split (the point of the buffers).
  EXPECT_GT(plan_decode_splits(1, 8, held_states(kH100, 3), 132 * 3, 256), 1);
}

TEST(KernelConfig, DecodeGroups) {
  for (auto [q, kv] : std::initializer_list<std::pair<int, int>>{{32, 32}, {32, 8}, {64, 8}, {8, 1}, {6, 6}})
    EXPECT_TRUE(decode_group_supported(q, kv));
  // More than 8 query heads per KV head, a ragged group, no KV heads.
  for (auto [q, kv] : std::initializer_list<std::pair<int, int>>{{32, 2}, {16, 1}, {12, 8}, {4, 8}, {8, 0}})
    EXPECT_FALSE(decode_group_supported(q, kv));
}

TEST(KernelConfig, CapacitiesGrowGeometrically) {
  EXPECT_EQ(grown_capacity(0, 5), 5);
  EXPECT_EQ(grown_capacity(100, 80), 100);   // fits: unchanged
  EXPECT_EQ(grown_capacity(100, 101), 150);  // one more block: half again
  EXPECT_EQ(grown_capacity(100, 400), 400);  // a jump past 1.5x: the need
  // Blocks listed by a span that grows one block a step: few reallocations, not one a step.
  int cap = 0, reallocations = 0;
  for (int need = 1; need <= 10000; ++need) {
    const int next = grown_capacity(cap, need);
    ASSERT_GE(next, need);
    reallocations += next != cap;
    cap = next;
  }
  EXPECT_LE(reallocations, 25);
  EXPECT_EQ(grown_capacity(2000000000, 2000000001), std::numeric_limits<int>::max());
}

TEST(KernelConfig, PerDeviceSettingAppliesOncePerDeviceAndOnlyUpward) {
  PerDeviceSetting setting;
  std::vector<std::pair<int, int>> calls;
  auto record = [&](int device) { return [&calls, device](int v) { calls.emplace_back(device, v); }; };
  setting.raise(0, 1000, record(0));
  setting.raise(0, 1000, record(0));  // already done on device 0
  setting.raise(0, 500, record(0));   // smaller need: nothing to do
  setting.raise(1, 500, record(1));   // a second device is configured on its own
  setting.raise(0, 2000, record(0));  // a larger need raises it again
  EXPECT_EQ(calls, (std::vector<std::pair<int, int>>{{0, 1000}, {1, 500}, {0, 2000}}));
  EXPECT_EQ(setting.applied(0), 2000);
  EXPECT_EQ(setting.applied(1), 500);
  EXPECT_EQ(setting.applied(7), 0);
  // A failed apply records nothing, so the next launch tries again.
  EXPECT_THROW(setting.raise(2, 10, [](int) { throw std::runtime_error("cudaFuncSetAttribute failed"); }),
               std::runtime_error);
  EXPECT_EQ(setting.applied(2), 0);
  setting.raise(2, 10, record(2));
  EXPECT_EQ(calls.back(), (std::pair<int, int>{2, 10}));
}

}  // namespace
}  // namespace sspan::cuda
