#!/usr/bin/env bash
# One call on a CUDA machine: build the CUDA targets, run the CUDA tests, the sanitizers
# and a short kernel sweep. Logs and the sweep's JSON go to $OUT (default: ./out).
# Usage: scripts/cuda_device_check.sh [arch]   (default: 90 for H100/H200; 80 for A100)
set -euo pipefail
arch="${1:-90}"
out="${OUT:-out}"
mkdir -p "$out"
build=build-cuda
cmake -S . -B "$build" -G Ninja -DSSPAN_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$out/configure.log"
cmake --build "$build" --target sspan_cuda_tests sspan-bench -j"$(nproc)" >"$out/build.log" 2>&1 ||
  { tail -50 "$out/build.log"; exit 1; }
"$build/bin/sspan_cuda_tests" 2>&1 | tee "$out/tests.log" | tail -5
scripts/cuda_sanitize.sh "$build" >"$out/sanitize.log" 2>&1 && echo "sanitizers clean" || { tail -30 "$out/sanitize.log"; exit 1; }
"$build/bin/sspan-bench" kernel --format json >"$out/kernel_sweep.json"
"$build/bin/sspan-bench" kernel --contexts 1024 4096 --clusters 16 64 256 --iters 20
