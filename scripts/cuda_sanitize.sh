#!/usr/bin/env bash
# Run the CUDA kernel tests under compute-sanitizer: memcheck (out-of-bounds and
# misaligned accesses, leaks) and racecheck (shared-memory hazards).
# Usage: scripts/cuda_sanitize.sh [build-dir]   (default: build)
set -euo pipefail
build="${1:-build}"
bin="$build/bin/sspan_cuda_tests"
[[ -x "$bin" ]] || { echo "cuda_sanitize: $bin not found; build the sspan_cuda_tests target first" >&2; exit 2; }
sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
[[ -x "$sanitizer" ]] || { echo "cuda_sanitize: compute-sanitizer not found" >&2; exit 2; }
# Kernel tests only; the backend tests repeat the same kernels through more host code.
filter="${SSPAN_SANITIZE_FILTER:-SparseDecodeTest.*:*CudaAttentionTest.Causal*:*CudaOpsTest.*}"
for tool in memcheck racecheck; do
  echo "== compute-sanitizer --tool $tool"
  extra=()
  [[ "$tool" == memcheck ]] && extra=(--leak-check full)
  "$sanitizer" --tool "$tool" "${extra[@]}" --error-exitcode 1 "$bin" --gtest_filter="$filter" --gtest_brief=1
done
echo "cuda_sanitize: memcheck and racecheck clean"
