#!/usr/bin/env bash
# Run the CUDA kernel tests under compute-sanitizer: memcheck (out-of-bounds and
# misaligned accesses, leaks) and racecheck (shared-memory hazards).
# Usage: scripts/cuda_sanitize.sh [build-dir] [memcheck|racecheck|both]   (default: build, both)
# Filters: SSPAN_SANITIZE_FILTER (memcheck), SSPAN_RACECHECK_FILTER (racecheck: it slows
# every shared-memory access by far more, so by default it runs a few cases per launch path).
set -euo pipefail
build="${1:-build}"
tools="${2:-both}"
bin="$build/bin/sspan_cuda_tests"
[[ -x "$bin" ]] || { echo "cuda_sanitize: $bin not found; build the sspan_cuda_tests target first" >&2; exit 2; }
sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
[[ -x "$sanitizer" ]] || { echo "cuda_sanitize: compute-sanitizer not found" >&2; exit 2; }
case "$tools" in
  memcheck | racecheck) ;;
  both) tools="memcheck racecheck" ;;
  *) echo "cuda_sanitize: unknown tool '$tools' (memcheck, racecheck or both)" >&2; exit 2 ;;
esac
# Kernel tests only; the backend tests repeat the same kernels through more host code.
memcheck_filter="${SSPAN_SANITIZE_FILTER:-SparseDecodeTest.*:*CudaAttentionTest.Causal*:*CudaOpsTest.*}"
racecheck_filter="${SSPAN_RACECHECK_FILTER:-SparseDecodeTest.EveryLaunch*:SparseDecodeTest.ManySplits*:SparseDecodeTest.ARowSubset*:AttentionRecordTest.PerHead*:AttentionRecordTest.TopKeys*:*CudaAttentionTest.EveryHeadDim*:SamplingTest.Rows*}"
status=0
for tool in $tools; do
  echo "== compute-sanitizer --tool $tool"
  extra=()
  filter=$racecheck_filter
  if [[ "$tool" == memcheck ]]; then
    extra=(--leak-check full)
    filter=$memcheck_filter
  fi
  # A failing test also exits 1: the sanitizer's ERROR SUMMARY line above says which it was.
  "$sanitizer" --tool "$tool" "${extra[@]}" --error-exitcode 1 "$bin" --gtest_filter="$filter" --gtest_brief=1 ||
    status=1
done
((status == 0)) && echo "cuda_sanitize: $tools clean"
exit $status
