#!/usr/bin/env bash
# End-to-end check of the LoRA path on a tiny random LLaMA (run by hand; needs torch,
# transformers, peft, sentencepiece):
#   span-masked fine-tune (a few steps) -> merge -> merged weights load in transformers
#   and give the peft model's logits. Also runs the span-mask attention checks.
# Usage: scripts/test_lora_pipeline.sh [TOKENIZER_MODEL]
#   PYTHON (default: python3) picks the interpreter; the tokenizer defaults to
#   $SSPAN_LLAMA_TOKENIZER, then ../shared/data/llama-tokenizer/tokenizer.model.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
tokenizer="${1:-${SSPAN_LLAMA_TOKENIZER:-$here/../../shared/data/llama-tokenizer/tokenizer.model}}"
if [[ ! -f "$tokenizer" ]]; then
  echo "no LLaMA tokenizer.model at '$tokenizer' (pass its path as the first argument)" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== span mask attention checks"
"$py" "$here/test_span_mask.py"

echo "== tiny base model and records"
"$py" "$here/lora_pipeline_check.py" make-base "$work/base" "$tokenizer"
"$py" "$here/lora_pipeline_check.py" make-records "$work/arith.jsonl" 20

echo "== fine-tune (span masks, 4 steps)"
# A high learning rate so that 4 steps move the model measurably.
"$py" "$here/finetune_lora.py" --base "$work/base" --data "$work/arith.jsonl" --out "$work/adapter" \
  --grammar arith --rank 8 --alpha 16 --lr 1e-2 --batch-size 2 --grad-accum 2 --max-steps 4

echo "== merge (float32 for the exact comparison, then float16 sharded)"
"$py" "$here/merge_lora.py" --base "$work/base" --adapter "$work/adapter" --out "$work/merged32" --dtype float32
"$py" "$here/merge_lora.py" --base "$work/base" --adapter "$work/adapter" --out "$work/merged16" \
  --max-shard-size 2MB
test -f "$work/merged16/model.safetensors.index.json" || { echo "float16 merge was not sharded" >&2; exit 1; }
test -f "$work/merged16/tokenizer.model" || { echo "tokenizer.model not copied" >&2; exit 1; }

echo "== compare"
"$py" "$here/lora_pipeline_check.py" compare "$work/base" "$work/adapter" "$work/merged32"
