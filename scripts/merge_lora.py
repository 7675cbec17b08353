#!/usr/bin/env python3
"""Merge a LoRA adapter (scripts/finetune_lora.py) into its base LLaMA checkpoint and
save a plain checkpoint the engine loads: config.json, model.safetensors (sharded with
model.safetensors.index.json when larger than --max-shard-size) and tokenizer.model
copied from the base. The merge is done in float32, then cast to --dtype.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import LlamaForCausalLM

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="base HF LLaMA checkpoint directory")
    ap.add_argument("--adapter", type=Path, required=True, help="LoRA adapter directory")
    ap.add_argument("--out", type=Path, required=True, help="merged checkpoint directory")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float16", help="saved weight dtype")
    ap.add_argument("--max-shard-size", default="5GB", help="largest safetensors file, e.g. 2GB or 500MB")
    args = ap.parse_args(argv)

    if not (args.adapter / "adapter_config.json").is_file():
        sys.exit(f"{args.adapter}: no adapter_config.json (not a LoRA adapter directory)")
    if args.out.resolve() in (args.base.resolve(), args.adapter.resolve()):
        sys.exit("--out must differ from --base and --adapter")

    base = LlamaForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, args.adapter).merge_and_unload()
    merged = merged.to(DTYPES[args.dtype])
    merged.save_pretrained(args.out, safe_serialization=True, max_shard_size=args.max_shard_size)

    tok = args.base / "tokenizer.model"
    if tok.is_file():
        shutil.copy2(tok, args.out / "tokenizer.model")
    else:
        print(f"warning: {tok} not found; copy a tokenizer.model next to the merged weights", file=sys.stderr)
    files = sorted(p.name for p in args.out.iterdir())
    print(f"merged checkpoint ({args.dtype}) written to {args.out}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
