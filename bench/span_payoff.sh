#!/usr/bin/env bash
# The end-to-end span payoff table: dense against the self-selected span (and any other
# policies) on long arithmetic solutions, per 256-token bucket of the completion, at the
# paper's batch sizes. Teacher-forced replay (sspan-bench e2e), so the spans and the
# sparsity are the dataset's and the figures do not depend on a model's accuracy.
#
#   bench/span_payoff.sh OUT_DIR [SHAPES] [BATCHES] [POLICIES] [REPS]
#
#   SHAPES    tiny (the shape of models/arith-tiny), 110m (sspan-random-model's 100m preset,
#             LLaMA tokenizer) or both, comma-separated (default tiny,110m)
#   BATCHES   default 16,48
#   POLICIES  default dense,arith
#   REPS      timed runs of every bucket and policy (default 3)
#
# Models are random weights of each shape with 4,096 positions; data is sspan-datagen arith
# with depth and digits ~ N(5, 2) (the paper's), completions of MIN_TOKENS-MAX_TOKENS
# (default 256-2,048) tokens in each model's tokenizer; each bucket replays its first
# PER_BUCKET records (default: one full batch). The 110m shape needs the LLaMA tokenizer
# (SSPAN_LLAMA_TOKENIZER).
# Measure on an otherwise idle machine: the tables go to OUT_DIR/*.md and stdout.
set -euo pipefail

out=${1:?usage: $0 OUT_DIR [SHAPES] [BATCHES] [POLICIES] [REPS]}
shapes=${2:-tiny,110m}
batches=${3:-16,48}
policies=${4:-dense,arith}
reps=${5:-3}
min_tokens=${MIN_TOKENS:-256}
max_tokens=${MAX_TOKENS:-2048}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SSPAN_BIN:-$root/build/bin}
llama_tok=${SSPAN_LLAMA_TOKENIZER:-$root/../shared/data/llama-tokenizer/tokenizer.model}
for tool in sspan-bench sspan-datagen sspan-random-model; do
  [[ -x $bin/$tool ]] || { echo "error: $tool not found in $bin (build first, or set SSPAN_BIN)" >&2; exit 1; }
done
mkdir -p "$out"

prepare() {  # prepare SHAPE: writes $out/SHAPE/model and its data set
  local shape=$1 dir=$out/$1 tok
  case $shape in
    tiny)
      tok=$root/models/arith-tiny/tokenizer.model
      local model_args=(--hidden 192 --intermediate 512 --layers 4 --heads 6 --kv-heads 6) ;;
    110m)
      tok=$llama_tok
      [[ -f $tok ]] || { echo "error: the 110m shape needs the LLaMA tokenizer: set SSPAN_LLAMA_TOKENIZER" >&2; exit 1; }
      local model_args=(--preset 100m) ;;
    *) echo "error: unknown shape '$shape' (tiny or 110m)" >&2; exit 1 ;;
  esac
  mkdir -p "$dir"
  [[ -f $dir/model/config.json ]] ||
    "$bin/sspan-random-model" -o "$dir/model" "${model_args[@]}" --max-positions 4096 --dtype float16 \
      --tokenizer "$tok" >&2
  [[ -f $dir/data-$min_tokens-$max_tokens.jsonl ]] ||
    "$bin/sspan-datagen" arith --count 1500 --seed 11 --depth-mean 5 --depth-sd 2 --digits-mean 5 --digits-sd 2 \
      --tokenizer "$tok" --min-tokens "$min_tokens" --max-tokens "$max_tokens" -o "$dir/data-$min_tokens-$max_tokens.jsonl"
}

IFS=, read -r -a shape_list <<< "$shapes"
IFS=, read -r -a batch_list <<< "$batches"
for shape in "${shape_list[@]}"; do
  prepare "$shape"
  for b in "${batch_list[@]}"; do
    dir=$out/$shape table=$out/$shape-$min_tokens-$max_tokens-b$b.md
    echo "== $shape, batch $b" >&2
    "$bin/sspan-bench" e2e -m "$dir/model" -d "$dir/data-$min_tokens-$max_tokens.jsonl" --span "$policies" --batch "$b" --bucket 256 \
      --per-bucket "${PER_BUCKET:-$b}" --reps "$reps" --format md > "$table"
    cat "$table"
    echo
  done
done
