#!/usr/bin/env bash
# Rebuild the long-chain arith data set and train models/arith-long (span masks) and its
# dense twin models/arith-long-dense from nothing: every command, seed and budget.
#
#   scripts/train_long_arith.sh data     # data sets and tokenizer      (~2 CPU-min)
#   scripts/train_long_arith.sh train    # both models, two stages       (CPU-days on 2 cores; restartable)
#   scripts/train_long_arith.sh continue # one more stage from the weights in models/ (STAGE, C_TOKENS, C_LR)
#   scripts/train_long_arith.sh export   # copy the last stage's exports to models/
#   scripts/train_long_arith.sh eval     # fresh 1,000-record test set, the README table, error census
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
# PREPARE_WORKERS (processes that build the span masks, default 1), TOKENIZER (data: use
# this tokenizer.model instead of training one, e.g. models/arith-long/tokenizer.model
# when continuing the shipped model).
#
# Continuing in a later session, on a machine without the earlier run directory:
#   TOKENIZER=models/arith-long/tokenizer.model scripts/train_long_arith.sh data
#   STAGE=c1 C_TOKENS=12e6 scripts/train_long_arith.sh continue && scripts/train_long_arith.sh export
# (the stage starts a new schedule from the fp16 weights in models/; c2, c3, ... after it).
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
S1_TOKENS=${S1_TOKENS:-4e6}
S2_TOKENS=${S2_TOKENS:-24e6}
EVAL_TOKENS=${EVAL_TOKENS:-2e6}
MAX_MINUTES=${MAX_MINUTES:-0}
PREPARE_WORKERS=${PREPARE_WORKERS:-1}
DATA=$RUNS/data
# long chains of small steps written one operation per prompt line (--layout lines):
# a [0], op b [1], ..., literals 1-9, + - * (2:2:1), every result in 0..99; step k names
# prompt line k and the line before, so each step attends to a few short lines
# (docs/datasets.md, "Layouts")
CHAIN=(--layout lines --literals 1,9 --results 0,99 --op-weights 2,2,1,0 --side-depth-max 0 --deep-left 1)
SHORT=(--depth-mean 16 --depth-sd 8)   # stage 1: completions <= 384 tokens
LONG=(--depth-mean 44 --depth-sd 20)   # stage 2 and the test sets: up to 1,024 tokens
read -r -a MODEL <<< "${MODEL_ARGS:---hidden 256 --layers 6 --heads 4 --intermediate 688 --max-positions 2048}"

data() {
  mkdir -p "$DATA"
  local D=$BIN/sspan-datagen
  "$D" arith --count 20000 --seed 5 "${CHAIN[@]}" "${LONG[@]}" -o "$DATA/tok_long.jsonl"
  "$D" arith --count 20000 --seed 6 "${CHAIN[@]}" "${SHORT[@]}" -o "$DATA/tok_short.jsonl"
  cat "$DATA/tok_long.jsonl" "$DATA/tok_short.jsonl" > "$DATA/tok_mix.jsonl"
  if [[ -n ${TOKENIZER:-} ]]; then
    cp "$TOKENIZER" "$DATA/tokenizer.model"
  else
    "$PY" "$ROOT/scripts/train_tokenizer.py" --input "$DATA/tok_mix.jsonl" --output "$DATA/tokenizer" \
        --vocab-size 280 --piece "[-1,"
  fi
  local T=(--tokenizer "$DATA/tokenizer.model")
  "$D" arith --count 100000 --seed 2 "${CHAIN[@]}" "${SHORT[@]}" "${T[@]}" --max-tokens 384 -o "$DATA/short.jsonl"
  "$D" arith --count 100000 --seed 1 "${CHAIN[@]}" "${LONG[@]}" "${T[@]}" --max-tokens 1024 -o "$DATA/mixed.jsonl"
  cat "$DATA/short.jsonl" "$DATA/mixed.jsonl" > "$DATA/train_all.jsonl"
  # held-out sets for the learning curves; no prompt of either training set
  "$D" arith --count 1000 --seed 778 "${CHAIN[@]}" "${SHORT[@]}" "${T[@]}" --max-tokens 384 \
      --exclude "$DATA/train_all.jsonl" -o "$DATA/heldout_short.jsonl"
  "$D" arith --count 1000 --seed 777 "${CHAIN[@]}" "${LONG[@]}" "${T[@]}" --min-tokens 256 \
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
    stage "$attn-s1" "$attn" short.jsonl heldout_short.jsonl "$S1_TOKENS" 384 2e-3 8192
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

# continue: one more stage of both models on the long data, from the weights in models/
continue_models() {
  local stage_name=${STAGE:-c1}
  [[ $stage_name == c[0-9]* ]] || { echo "STAGE must be c1, c2, ... (got '$stage_name')" >&2; return 2; }
  mkdir -p "$RUNS"
  PIDS=()
  for pair in span:arith-long dense:arith-long-dense; do
    local attn=${pair%%:*} model=$ROOT/models/${pair#*:}
    [[ -f $model/model.safetensors ]] || { echo "continue: no $model/model.safetensors" >&2; return 1; }
    stage "$attn-$stage_name" "$attn" mixed.jsonl heldout_long.jsonl "${C_TOKENS:-12e6}" 1024 "${C_LR:-1e-3}" 16384 "$model"
  done
  wait_all
}

# The last stage of ATTN with an export: s1, s2, then c1, c2, ... (empty when none)
last_stage() {
  local attn=$1 last= s
  for s in s1 s2 $(cd "$RUNS" 2>/dev/null && ls -d "$attn"-c* 2>/dev/null | sed "s/^$attn-//" | sort -V); do
    [[ -f $RUNS/$attn-$s/export/model.safetensors ]] && last=$attn-$s
  done
  echo "$last"
}

export_models() {
  for pair in span:arith-long dense:arith-long-dense; do
    local last
    last=$(last_stage "${pair%%:*}")
    [[ -n $last ]] || { echo "export: no export of the ${pair%%:*} model under $RUNS" >&2; return 1; }
    local src=$RUNS/$last/export dst=$ROOT/models/${pair#*:}
    mkdir -p "$dst"
    cp "$src"/{model.safetensors,config.json,generation_config.json,tokenizer.model} "$dst"/
    echo "exported $src -> $dst"
  done
}

evaluate() {
  local test=$RUNS/test.jsonl
  "$BIN/sspan-datagen" arith --count 1000 --seed 20261201 "${CHAIN[@]}" "${LONG[@]}" \
      --tokenizer "$ROOT/models/arith-long/tokenizer.model" --min-tokens 256 --max-tokens 1024 \
      --exclude "$DATA/train_all.jsonl" -o "$test"
  "$BIN/sspan-eval" -m "$ROOT/models/arith-long" -d "$test" --span arith,dense --batch 16 -n 1100 --bucket 256 \
      --samples "$RUNS/test_samples_span.jsonl"
  "$BIN/sspan-eval" -m "$ROOT/models/arith-long-dense" -d "$test" --span dense --batch 16 -n 1100 --bucket 256 \
      --samples "$RUNS/test_samples_dense.jsonl"
  # the sparsity histogram and where the wrong solutions first go wrong
  "$PY" "$ROOT/scripts/arith_samples.py" "$RUNS/test_samples_span.jsonl"
  "$PY" "$ROOT/scripts/arith_samples.py" "$RUNS/test_samples_dense.jsonl"
}

curve() {
  # stage 2 counts from the end of stage 1; continued stages (c1, ...) count from 0
  local runs=() s attn
  for attn in span dense; do
    for s in s1 s2 $(cd "$RUNS" 2>/dev/null && ls -d "$attn"-c* 2>/dev/null | sed "s/^$attn-//" | sort -V); do
      runs+=("$attn-$s=$RUNS/$attn-$s")
    done
  done
  "$PY" "$ROOT/scripts/curve_table.py" "${runs[@]}" --offset span-s2="$S1_TOKENS" --offset dense-s2="$S1_TOKENS"
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
    local last
    last=$(last_stage "$attn")
    [[ -n $last ]] || { echo "pack: no export of the $attn model under $RUNS" >&2; return 1; }
    cp "$RUNS/$last/export/model.safetensors" "$out/$attn-model.safetensors"
    files+=("$last/export/config.json" "$last/export/generation_config.json" "$last/export/tokenizer.model")
    for s in s1 s2 $(cd "$RUNS" && ls -d "$attn"-c* 2>/dev/null | sed "s/^$attn-//"); do
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
  continue) continue_models ;;
  export) export_models ;;
  eval) evaluate ;;
  curve) curve ;;
  pack) pack "${2:-}" ;;
  *) echo "usage: $0 data|train|continue|export|eval|curve|pack OUT" >&2; exit 2 ;;
esac
