#!/usr/bin/env bash
# Everything that needs a GPU, in one run: build with CUDA, the `cuda` tests,
# compute-sanitizer on the kernel tests, the Figure 9 kernel sweep, decode throughput,
# and sspan-generate --device cuda end to end under dense and arith.
# usage: scripts/gpu_check.sh OUT_DIR [CUDA_ARCH]      (logs and tables land in OUT_DIR)
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [CUDA_ARCH]}
arch=${2:-90}
cd "$(dirname "$0")/.."
mkdir -p "$out"
status=0
step() {  # step NAME COMMAND...: run, log to OUT/NAME.log, remember failures
  local name=$1; shift
  echo "== $name: $*"
  if "$@" >"$out/$name.log" 2>&1; then echo "   ok"; else echo "   FAILED (see $name.log)"; status=1; fi
  tail -n 5 "$out/$name.log"
}
step configure cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSPAN_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch"
step build cmake --build build-gpu -j"$(nproc)"
step nvidia-smi nvidia-smi
step ctest ctest --test-dir build-gpu --output-on-failure -j4
step sanitize scripts/cuda_sanitize.sh build-gpu
step kernel-bench build-gpu/bin/sspan-bench kernel --format md
model=models/arith-tiny
for span in dense arith; do
  step "generate-$span" build-gpu/bin/sspan-generate -m "$model" --device cuda --span "$span" -f examples/arith.txt \
    --span-trace "$out/trace-$span.jsonl"
  step "generate-cpu-$span" build-gpu/bin/sspan-generate -m "$model" --device cpu --span "$span" -f examples/arith.txt
done
build-gpu/bin/sspan-random-model -o /tmp/sspan-100m --preset 100m >/dev/null
step decode-bench-cuda build-gpu/bin/sspan-bench decode -m /tmp/sspan-100m --device cuda --batch 1,8,64
exit $status
