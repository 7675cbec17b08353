#!/usr/bin/env python3
"""Helpers of scripts/test_lora_pipeline.sh.

  make-base DIR TOKENIZER   tiny random LlamaForCausalLM (vocab 32000, hidden 64) with
                            the given tokenizer.model copied in
  make-records FILE N       N arithmetic records in the `arith` format (paper Figure 5)
  compare BASE ADAPTER MERGED
                            the merged checkpoint loads in transformers and its logits
                            equal base+adapter (peft, unmerged) within 1e-4, and differ
                            from the base's (so the adapter was trained and merged)
"""
from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import torch

TOL = 1e-4


def make_base(out: Path, tokenizer: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM  # noqa: PLC0415
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    shutil.copy2(tokenizer, out / "tokenizer.model")
    print(f"base model written to {out}")


def arith_record(rng: random.Random) -> dict:
    a, b, c, d = (rng.randint(2, 99) for _ in range(4))
    ab, cd = a * b, c * d
    prompt = f"({a} * {b}) + ({c} * {d}) [0]\n"
    completion = (f"[-1] {a} * {b}={ab} [1]\n"
                  f"[0] {c} * {d}={cd} [2]\n"
                  f"[1,2] {ab} + {cd}={ab + cd}")
    return {"prompt": prompt, "completion": completion}


def make_records(out: Path, n: int) -> None:
    rng = random.Random(7)
    with out.open("w") as f:
        for _ in range(n):
            f.write(json.dumps(arith_record(rng)) + "\n")
    print(f"{n} records written to {out}")


def compare(base_dir: Path, adapter: Path, merged_dir: Path) -> int:
    from peft import PeftModel  # noqa: PLC0415
    from transformers import LlamaForCausalLM  # noqa: PLC0415
    ids = torch.tensor([[1, 313, 29946, 29906, 334, 29871, 29945, 29953, 29897, 718, 29871, 13]])  # [1, 12]
    with torch.no_grad():
        base = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
        base_logits = base(ids).logits  # [1, 12, V]
        peft_model = PeftModel.from_pretrained(base, adapter).eval()
        peft_logits = peft_model(ids).logits
        merged = LlamaForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
        merged_logits = merged(ids).logits
    diff = (merged_logits - peft_logits).abs().max().item()
    moved = (merged_logits - base_logits).abs().max().item()
    print(f"merged vs peft (base + adapter): max |diff| {diff:.3g} (at most {TOL:g})")
    print(f"merged vs base: max |diff| {moved:.3g} (at least {10 * TOL:g}: the adapter changed the model)")
    ok = diff <= TOL and moved >= 10 * TOL
    print("lora pipeline: ok" if ok else "lora pipeline: FAILED")
    return 0 if ok else 1


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "make-base" and len(rest) == 2:
        make_base(Path(rest[0]), Path(rest[1]))
    elif cmd == "make-records" and len(rest) == 2:
        make_records(Path(rest[0]), int(rest[1]))
    elif cmd == "compare" and len(rest) == 3:
        return compare(Path(rest[0]), Path(rest[1]), Path(rest[2]))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
