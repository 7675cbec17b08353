#!/usr/bin/env bash
# Rebuild the long-chain arith data set and train models/arith-long (span masks) and its
# dense twin models/arith-long-dense from nothing: every command, seed and budget.
#
#   scripts/train_long_arith.sh data     # data sets and tokenizer      (~2 CPU-min)
#   scripts/train_long_arith.sh train    # both models, two stages       (CPU-days on 2 cores; restartable)
#   scripts/train_long_arith.sh export   # copy the exports to models/
#   scripts/train_long_arith.sh eval     # fresh 1,000-record test set, the README table
#   scripts/train_long_arith.sh curve    # the learning curves so far
#   scripts/train_long_arith.sh pack OUT # both models and the training record in 3 files
#
# On a GPU host (train_tiny.py trains on CUDA when torch sees a device; the engine
# evaluations stay on the CPU), after a build in build-gpu:
#   RUNS=/tmp/arith-long BIN=build-gpu/bin THREADS=8 PREPARE_WORKERS=8 EVAL_TOKENS=12e6 \
#     bash -c 'scripts/train_long_arith.sh data && scripts/train_long_arith.sh train && \
#              scripts/train_long_arith.sh pack OUT'
#
# Environment: RUNS (work directory, default out/arith-long), PY (a Python with torch,
# numpy, sentencepiece, safetensors), BIN (sspan-* binaries, default build/bin),
# THREADS (per model, default 1: the two models train side by side), PIDS_FILE (if set,
# the ids of the driver and of the running trainers are written there, one per line),
# S1_TOKENS / S2_TOKENS (completion tokens of each stage), MODEL_ARGS (the model shape),
# EVAL_TOKENS (completion tokens between held-out evaluations, default 2e6),
# PREPARE_WORKERS (processes that build the span masks, default 1).
# `train` continues where it stopped: a stage with result.json is done, a stage with a
# checkpoint.pt is resumed exactly (scripts/train_tiny.py --resume). MAX_MINUTES ends each
# trainer after that wall time with a checkpoint; so does SIGTERM to a trainer (its id is
# in PIDS_FILE). Stage 2 starts only from a finished stage 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-$ROOT/out/arith-long}
PY=${PY:-python3}
BIN=${BIN:-$ROOT/build/bin}
THREADS=${THREADS:-1}
S1_TOKENS=${S1_TOKENS:-12e6}
S2_TOKENS=${S2_TOKENS:-36e6}
EVAL_TOKENS=${EVAL_TOKENS:-2e6}
MAX_MINUTES=${MAX_MINUTES:-0}
PREPARE_WORKERS=${PREPARE_WORKERS:-1}
DATA=$RUNS/data
# long chains of small steps: (((a op b) op c) ...), literals 1-9, + - * (2:2:1), every
# result in 0..999 (docs/datasets.md)
CHAIN=(--literals 1,9 --results 0,999 --op-weights 2,2,1,0 --side-depth-max 0 --deep-left 1)
read -r -a MODEL <<< "${MODEL_ARGS:---hidden 256 --layers 6 --heads 4 --intermediate 688 --max-positions 2048}"

data() {
  mkdir -p "$DATA"
  local D=$BIN/sspan-datagen
  "$D" arith --count 20000 --seed 5 "${CHAIN[@]}" --depth-mean 32 --depth-sd 10 -o "$DATA/tok_long.jsonl"
  "$D" arith --count 20000 --seed 6 "${CHAIN[@]}" --depth-mean 10 --depth-sd 5 -o "$DATA/tok_short.jsonl"
  cat "$DATA/tok_long.jsonl" "$DATA/tok_short.jsonl" > "$DATA/tok_mix.jsonl"
  "$PY" "$ROOT/scripts/train_tokenizer.py" --input "$DATA/tok_mix.jsonl" --output "$DATA/tokenizer" \
      --vocab-size 299 --piece "[0,"
  local T=(--tokenizer "$DATA/tokenizer.model")
  # stage 1: short chains (completions <= 256 tokens); stage 2: 1-1,024 tokens
  "$D" arith --count 100000 --seed 2 "${CHAIN[@]}" --depth-mean 10 --depth-sd 5 "${T[@]}" --max-tokens 256 \
      -o "$DATA/short.jsonl"
  "$D" arith --count 100000 --seed 1 "${CHAIN[@]}" --depth-mean 24 --depth-sd 12 "${T[@]}" --max-tokens 1024 \
      -o "$DATA/mixed.jsonl"
  cat "$DATA/short.jsonl" "$DATA/mixed.jsonl" > "$DATA/train_all.jsonl"
  # held-out sets for the learning curves; no prompt of either training set
  "$D" arith --count 1000 --seed 778 "${CHAIN[@]}" --depth-mean 10 --depth-sd 5 "${T[@]}" --max-tokens 256 \
      --exclude "$DATA/train_all.jsonl" -o "$DATA/heldout_short.jsonl"
  "$D" arith --count 1000 --seed 777 "${CHAIN[@]}" --depth-mean 32 --depth-sd 10 "${T[@]}" --min-tokens 256 \
      --max-tokens 1024 --exclude "$DATA/train_all.jsonl" -o "$DATA/heldout_long.jsonl"
}

# stage NAME ATTN TRAIN HELDOUT TOKENS MAX_COMPLETION LR BATCH_TOKENS [INIT]: starts the
# trainer in the background and appends its id to PIDS (nothing when the stage is done)
stage() {
  local name=$1 attn=$2 train=$3 heldout=$4 tokens=$5 max=$6 lr=$7 batch=$8 init=${9:-}
  local out=$RUNS/$name
  [[ -f $out/result.json ]] && { echo "$name: done"; return 0; }
  mkdir -p "$out"
  local from=()
  if [[ -f $out/checkpoint.pt ]]; then
    from=(--resume "$out/checkpoint.pt")
  elif [[ -n $init ]]; then
    from=(--init "$init")
  fi
  OMP_WAIT_POLICY=passive "$PY" "$ROOT/scripts/train_tiny.py" --attn "$attn" --out "$out" \
      --train "$DATA/$train" --heldout "$DATA/$heldout" --tokenizer "$DATA/tokenizer.model" \
      --train-tokens "$tokens" --max-tokens "$max" --lr "$lr" --batch-tokens "$batch" "${MODEL[@]}" \
      --threads "$THREADS" --eval-tokens "$EVAL_TOKENS" --eval-records 200 --engine-eval "$BIN/sspan-eval" \
      --checkpoint-tokens 5e5 --cache "$RUNS/cache" --prepare-workers "$PREPARE_WORKERS" \
      --max-minutes "$MAX_MINUTES" "${from[@]}" > "$out/stdout.log" 2>&1 &
  PIDS+=("$!")
  echo "$name: started (pid $!, log $out/train.log)"
}

write_pids() {
  if [[ -n ${PIDS_FILE:-} ]]; then printf '%s\n' "$$" "$@" > "$PIDS_FILE"; fi
}

# waits for the trainers in PIDS; fails if any failed
wait_all() {
  write_pids "${PIDS[@]}"
  local failed=0
  for p in "${PIDS[@]}"; do wait "$p" || failed=1; done
  PIDS=()
  write_pids
  return $failed
}

train() {
  mkdir -p "$RUNS"
  PIDS=()
  # stage 1: short chains, learn the step; stage 2: all lengths up to 1,024 tokens
  for attn in span dense; do
    stage "$attn-s1" "$attn" short.jsonl heldout_short.jsonl "$S1_TOKENS" 256 2e-3 8192
  done
  wait_all
  for attn in span dense; do
    [[ -f $RUNS/$attn-s1/result.json ]] ||
      { echo "$attn-s1 stopped before its end (checkpoint kept); run train again to continue"; return 0; }
  done
  for attn in span dense; do
    stage "$attn-s2" "$attn" mixed.jsonl heldout_long.jsonl "$S2_TOKENS" 1024 1e-3 16384 "$RUNS/$attn-s1/checkpoint.pt"
  done
  wait_all
}

export_models() {
  for pair in span:arith-long dense:arith-long-dense; do
    local src=$RUNS/${pair%%:*}-s2/export dst=$ROOT/models/${pair#*:}
    mkdir -p "$dst"
    cp "$src"/{model.safetensors,config.json,generation_config.json,tokenizer.model} "$dst"/
    echo "exported $src -> $dst"
  done
}

evaluate() {
  local test=$RUNS/test.jsonl
  "$BIN/sspan-datagen" arith --count 1000 --seed 20261201 "${CHAIN[@]}" --depth-mean 32 --depth-sd 10 \
      --tokenizer "$ROOT/models/arith-long/tokenizer.model" --min-tokens 256 --max-tokens 1024 \
      --exclude "$DATA/train_all.jsonl" -o "$test"
  "$BIN/sspan-eval" -m "$ROOT/models/arith-long" -d "$test" --span arith,dense --batch 16 -n 1100 --bucket 256
  "$BIN/sspan-eval" -m "$ROOT/models/arith-long-dense" -d "$test" --span dense --batch 16 -n 1100 --bucket 256
}

curve() {
  "$PY" "$ROOT/scripts/curve_table.py" span-s1="$RUNS/span-s1" dense-s1="$RUNS/dense-s1" \
      span-s2="$RUNS/span-s2" dense-s2="$RUNS/dense-s2" --offset span-s2="$S1_TOKENS" --offset dense-s2="$S1_TOKENS"
}

# pack OUT: what a machine that returns few files brings back, three files in OUT:
# span-model.safetensors and dense-model.safetensors (the last stage reached of each) and
# train-record.tar (their config.json, generation_config.json and tokenizer.model, and
# every stage's curve.jsonl, train.log and result.json).
pack() {
  local out=${1:?usage: $0 pack OUT}
  mkdir -p "$out"
  local files=()
  for attn in span dense; do
    local last=
    for s in s1 s2; do [[ -f $RUNS/$attn-$s/export/model.safetensors ]] && last=$attn-$s; done
    [[ -n $last ]] || { echo "pack: no export of the $attn model under $RUNS" >&2; return 1; }
    cp "$RUNS/$last/export/model.safetensors" "$out/$attn-model.safetensors"
    files+=("$last/export/config.json" "$last/export/generation_config.json" "$last/export/tokenizer.model")
    for s in s1 s2; do
      for f in curve.jsonl train.log result.json; do
        [[ -f $RUNS/$attn-$s/$f ]] && files+=("$attn-$s/$f")
      done
    done
  done
  tar -C "$RUNS" -cf "$out/train-record.tar" "${files[@]}"
  echo "packed $out: $(ls "$out" | tr '\n' ' ')"
}

case ${1:-} in
  data) data ;;
  train) train ;;
  export) export_models ;;
  eval) evaluate ;;
  curve) curve ;;
  pack) pack "${2:-}" ;;
  *) echo "usage: $0 data|train|export|eval|curve|pack OUT" >&2; exit 2 ;;
esac
