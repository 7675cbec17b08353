#!/usr/bin/env bash
# Everything that needs a GPU, in one run, every output under OUT_DIR:
#   summary.md       each step: status and seconds; then the tables below, in one file
#   gpu_check.log    every step's full output, in order
#   kernel_bench.md  sspan-bench kernel: the Figure 9 sweep on 32/32, 32/8 and 64/8 heads,
#                    every launch variant validated then timed, % of copy bandwidth
#   decode_bench.md  sspan-bench decode on the GPU (bytes in the device dtype, % of copy bandwidth)
#   generate.md      the README's job (sspan-generate) on the GPU and the CPU, dense and arith
#   e2e_bench.md     sspan-bench e2e, when this build has that subcommand
# Six files at most, so that all of them can be carried back from a machine that returns few.
#
# usage: scripts/gpu_check.sh OUT_DIR [CUDA_ARCH]     (CUDA_ARCH default 90: H100/H200)
#
# Steps in order, with their time limits and (in brackets) the expected time on an
# H100/H200 host with 16 cores: about 8-9 minutes in all, build included. Each step has its
# own limit, so one hung step cannot take the others' time; the most valuable run first.
#   deps        unpack .deps/*.deb when present                          60 s   [5 s]
#   nvidia-smi  the device as found                                      20 s   [1 s]
#   configure   cmake, Release, ninja, CUDA on, this arch only           120 s  [15 s]
#   build       every target, -j16                                       360 s  [2-3 min]
#   ctest       all tests (CUDA tests run on the device)                 240 s  [1-2 min]
#   kernel      sspan-bench kernel (4 variants, 3 head shapes, 4 contexts) 200 s [1 min]
#   decode      sspan-bench decode, 100m (head_dim 64) and 15m (48) presets 120 s [20 s]
#   generate    sspan-generate on models/arith-tiny{,-dense}, GPU and CPU 60 s  [10 s]
#   memcheck    compute-sanitizer memcheck on the kernel tests           150 s  [1 min]
#   racecheck   compute-sanitizer racecheck on a few cases per launch path 100 s [1 min]
#   e2e         sspan-bench e2e on 96 arith records, dense and arith     120 s  [1 min]
# Set GPU_CHECK_SKIP="racecheck e2e" (names above) to skip steps on a short lease. One run
# of the device tool is cut at 600 s, so the whole script keeps to GPU_CHECK_DEADLINE
# seconds (default 570): a step gets what is left of it, and a step with under 15 s left
# is skipped, so the summary and the tables are always written.
#
# A GPU host without the project's C++ libraries (sentencepiece, spdlog, fmt,
# nlohmann_json, CLI11, GoogleTest, pkg-config) and without a package registry: on a
# Debian 12 machine with apt, put them as .deb files into the ignored folder .deps/ of the
# checkout with `scripts/fetch_debs.sh .deps`, bring the checkout (with .deps/) to the GPU
# host and run this script: it unpacks them into a private prefix and points CMake and
# pkg-config there (scripts/unpack_debs.sh). SSPAN_DEPS_DIR names another folder.
# Tests that need the LLaMA tokenizer find it through SSPAN_LLAMA_TOKENIZER (a copy at
# .deps/llama-tokenizer.model is used when present) and skip without it.
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [CUDA_ARCH]}
arch=${2:-90}
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out/gpu_check.log"
summary="$out/summary.md"
build=build-gpu
jobs=$(nproc)
((jobs > 16)) && jobs=16
: >"$log"
printf '# gpu_check (%s, arch %s)\n\n| step | status | seconds |\n|---|---|---:|\n' "$(date -u +%FT%TZ)" "$arch" >"$summary"
status=0

skipped() { [[ " ${GPU_CHECK_SKIP:-} " == *" $1 "* ]]; }
deadline=${GPU_CHECK_DEADLINE:-570}

# step NAME LIMIT_S COMMAND...: run with a time limit, append its output to the log,
# record status and seconds in the summary.
step() {
  local name=$1 limit=$2
  shift 2
  if skipped "$name"; then
    echo "| $name | skipped | 0 |" >>"$summary"
    return 0
  fi
  local left=$((deadline - SECONDS))
  if ((left < 15)); then
    echo "== $name: skipped, ${left} s left of the ${deadline} s deadline" | tee -a "$log"
    echo "| $name | skipped (deadline) | 0 |" >>"$summary"
    status=1
    return 1
  fi
  ((limit > left)) && limit=$left
  echo "== $name: $*" | tee -a "$log"
  local t0=$SECONDS rc=0
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1 || rc=$?
  local verdict=ok
  if ((rc == 124 || rc == 137)); then
    verdict="timed out after ${limit} s"
  elif ((rc != 0)); then
    verdict="FAILED (exit $rc)"
  fi
  [[ $verdict == ok ]] || status=1
  echo "   $verdict ($((SECONDS - t0)) s)" | tee -a "$log"
  echo "| $name | $verdict | $((SECONDS - t0)) |" >>"$summary"
  [[ $verdict == ok ]]
}

# A table step: like step, but stdout goes to OUT/FILE as well as the log.
table_step() {
  local name=$1 limit=$2 file=$3
  shift 3
  step "$name" "$limit" bash -c 'set -o pipefail; "$@" | tee "$0"' "$out/$file" "$@"
}

deps_dir=${SSPAN_DEPS_DIR:-$root/.deps}
if compgen -G "$deps_dir/*.deb" >/dev/null; then
  step deps 60 bash -c "scripts/unpack_debs.sh '$deps_dir' /tmp/sspan-deps >/tmp/sspan-deps.env"
  # shellcheck disable=SC1091
  [[ -f /tmp/sspan-deps.env ]] && source /tmp/sspan-deps.env
fi
if [[ -z ${SSPAN_LLAMA_TOKENIZER:-} && -f $deps_dir/llama-tokenizer.model ]]; then
  export SSPAN_LLAMA_TOKENIZER=$deps_dir/llama-tokenizer.model
fi

step nvidia-smi 20 nvidia-smi
step configure 120 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSPAN_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch"
if ! step build 360 cmake --build "$build" -j"$jobs"; then
  echo "gpu_check: the build did not complete; nothing else can run (see $log)" | tee -a "$log"
  exit 1
fi
bin=$build/bin

step ctest 240 ctest --test-dir "$build" --output-on-failure -j8 --timeout 200
table_step kernel 200 kernel_bench.md "$bin/sspan-bench" kernel --format md --iters 20 --warmup 3 \
  --clusters 16,32,64,256

decode_bench() {
  "$bin/sspan-random-model" -o /tmp/sspan-100m --preset 100m --no-tokenizer >/dev/null &&
    "$bin/sspan-bench" decode -m /tmp/sspan-100m --device cuda --batch 1,8,64 &&
    "$bin/sspan-bench" decode -m /tmp/sspan-100m --device cuda --batch 64 --pp 0 --prompt-tokens 1536 --steps 32 \
      --reps 2 --span dense,window:sink=4,recent=256 &&
    "$bin/sspan-random-model" -o /tmp/sspan-15m --preset 15m --no-tokenizer >/dev/null &&
    "$bin/sspan-bench" decode -m /tmp/sspan-15m --device cuda --batch 1,8
}
export -f decode_bench
export bin
table_step decode 120 decode_bench.md bash -c decode_bench

# The README's main job (arith-long, head_dim 64) and the short model (head_dim 32) on
# the shipped models, GPU against CPU.
generate_job() {
  for job in "arith-long arith arith-long.txt 1024" "arith-long dense arith-long.txt 1024" \
             "arith-tiny arith arith.txt 256" "arith-tiny dense arith.txt 256" "arith-tiny-dense dense arith.txt 256"; do
    set -- $job
    echo "## models/$1 --span $2, examples/$3"
    local gpu cpu
    gpu=$("$bin/sspan-generate" -m "models/$1" --device cuda --span "$2" -f "examples/$3" -n "$4" --quiet) || return 1
    cpu=$("$bin/sspan-generate" -m "models/$1" --device cpu --span "$2" -f "examples/$3" -n "$4" --quiet) || return 1
    printf 'GPU:\n```\n%s\n```\nCPU:\n```\n%s\n```\n' "$gpu" "$cpu"
    if [[ "$gpu" == "$cpu" ]]; then echo "same text on both devices"; else echo "the texts differ"; fi
    echo
  done
}
export -f generate_job
table_step generate 60 generate.md bash -c generate_job

# The kernel tests under the sanitizers (the long-context case is left to ctest).
export SSPAN_SANITIZE_FILTER="${SSPAN_SANITIZE_FILTER:-SparseDecodeTest.*:AttentionRecordTest.*:*CudaAttentionTest.*:*CudaOpsTest.*:SamplingTest.Rows*:-SparseDecodeTest.LongContext16k:AttentionRecordTest.MassOnEveryHeadDimAndALongContext:*GraphReplay*}"
step memcheck 150 scripts/cuda_sanitize.sh "$build" memcheck
step racecheck 100 scripts/cuda_sanitize.sh "$build" racecheck

# Span against dense end to end: the shipped model replays 96 arith references (teacher
# forcing; the spans are the data's, whatever the model writes), within its 512 positions.
e2e_job() {
  "$bin/sspan-datagen" arith --count 96 --seed 1 --tokenizer models/arith-tiny/tokenizer.model --max-tokens 384 \
    -o /tmp/sspan-e2e.jsonl >/dev/null &&
    "$bin/sspan-bench" e2e -m models/arith-tiny -d /tmp/sspan-e2e.jsonl --device cuda --span dense,arith \
      --batch 16 --reps 1
}
export -f e2e_job
table_step e2e 120 e2e_bench.md bash -c e2e_job

# The tables, after the step list, in the summary.
for f in kernel_bench.md decode_bench.md generate.md e2e_bench.md; do
  [[ -s "$out/$f" ]] && printf '\n## %s\n\n' "$f" >>"$summary" && cat "$out/$f" >>"$summary"
done
echo "gpu_check: $( ((status == 0)) && echo "every step passed" || echo "some steps failed" ); see $summary"
exit $status
