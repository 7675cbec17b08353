#include "arith_stream.h"

#include <omp.h>

#include <vector>

#include "common/check.h"

namespace sspan::data {
namespace {

constexpr int64_t kBatch = 1024;  // candidates generated per parallel round

}  // namespace

void write_arith_stream(const ArithStreamOptions& opt,
                        const std::function<void(const ArithRecord&)>& emit) {
  SSPAN_CHECK(opt.count >= 0, "--count must be >= 0, got {}", opt.count);
  SSPAN_CHECK(opt.arith.depth_sd >= 0 && opt.arith.digits_sd >= 0,
              "--depth-sd and --digits-sd must be >= 0");
  const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  std::vector<ArithRecord> batch(kBatch);
  int64_t written = 0;
  for (uint64_t first = 0; written < opt.count; first += kBatch) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
    for (int64_t k = 0; k < kBatch; ++k)
      batch[size_t(k)] = random_arith_record(opt.seed, first + uint64_t(k), opt.arith);
    for (int64_t k = 0; k < kBatch && written < opt.count; ++k, ++written) emit(batch[size_t(k)]);
  }
}

}  // namespace sspan::data
