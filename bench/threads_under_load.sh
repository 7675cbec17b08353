#!/usr/bin/env bash
# Decode throughput with the default thread count against -t 1, on an idle machine and
# under a competing load (one busy process per CPU, started and stopped by this script).
# The default must never be much worse than one thread, and should keep the multi-thread
# speed when the machine is idle.
#
#   bench/threads_under_load.sh MODEL_DIR [ROUNDS] [BATCH]
#
# Rounds alternate the four cases (idle/loaded x default/-t 1) so a slow spell of the
# machine hits all of them; the table gives the median and range of decode tokens/s.
set -euo pipefail

model=${1:?usage: $0 MODEL_DIR [ROUNDS] [BATCH]}
rounds=${2:-3}
batch=${3:-1}
bench=${SSPAN_BENCH:-$(dirname "$0")/../build/bin/sspan-bench}
[[ -x $bench ]] || { echo "error: sspan-bench not found at $bench (set SSPAN_BENCH)" >&2; exit 1; }
cpus=$(nproc)

busy_pids=()
stop_load() {
  for p in "${busy_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${busy_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  busy_pids=()
}
trap stop_load EXIT
start_load() {
  for ((i = 0; i < cpus; ++i)); do
    bash -c 'while :; do :; done' &
    busy_pids+=($!)
  done
  sleep 1
}

# decode tokens/s of one run: THREADS (0 = the default)
run() {
  "$bench" decode -m "$model" --pp 0 --batch "$batch" --prompt-tokens 32 --steps 32 --reps 1 -t "$1" --format csv |
    awk -F, '$1 == "test" { for (i = 1; i <= NF; ++i) if ($i == "tokens_per_s") col = i }
             $1 == "tg" { if (!col) { print "error: no tokens_per_s column" > "/dev/stderr"; exit 1 } print $col }'
}

declare -A results
for ((r = 0; r < rounds; ++r)); do
  for load in idle loaded; do
    [[ $load == loaded ]] && start_load
    for t in 0 1; do results[$load,$t]+="$(run "$t") "; done
    [[ $load == loaded ]] && stop_load
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f (%.1f–%.1f)", m, v[1], v[NR] }'; }
echo "model $model | batch $batch | $cpus CPUs | $rounds rounds | competing load: $cpus busy processes"
echo
echo "| machine | threads | decode tokens/s, median (min–max) |"
echo "|---|---|---:|"
for load in idle loaded; do
  echo "| $load | default | $(echo "${results[$load,0]}" | median) |"
  echo "| $load | -t 1 | $(echo "${results[$load,1]}" | median) |"
done
