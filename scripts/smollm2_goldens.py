#!/usr/bin/env python3
"""Goldens for tests/model/smollm2_test.cpp: what transformers computes with the real
SmolLM2-135M-Instruct weights (the float32 HF layout that scripts/fetch_smollm2.py writes
from the Q4_1 GGUF, so both of the engine's routes, GGUF and HF, see the same numbers).

Writes tests/data/smollm2/golden.json (format 1):
  prompts:     [P] {"text", "ids" (the tokenizer's, no BOS: SmolLM2 adds none)}
  checked_ids: [P][n][K] the vocabulary ids whose logits are stored at each position: a
               fixed random sample of 192 ids plus that position's top 32
  logits:      [P][n][K] float32 logits of the full-prompt forward at those ids
  greedy:      [P][16] greedy continuation (model.generate, do_sample=False, EOS ignored)
  margins:     [P][16] top-1 minus top-2 logit at each greedy step
Needs: torch, transformers, tokenizers.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["The capital of France is", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\""]
NEW_TOKENS = 16
SAMPLE_IDS = 192
TOP = 32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2" / "hf")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "smollm2" / "golden.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tok = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    V = model.config.vocab_size
    sample = np.random.default_rng(20261201).choice(V, SAMPLE_IDS, replace=False).tolist()
    doc = {"format": 1, "transformers_version": transformers.__version__, "torch_version": torch.__version__,
           "new_tokens": NEW_TOKENS, "prompts": [], "checked_ids": [], "logits": [], "greedy": [], "margins": []}
    with torch.no_grad():
        for text in PROMPTS:
            ids = tok.encode(text, add_special_tokens=False).ids
            logits = model(torch.tensor([ids])).logits[0].float()
            checked, values = [], []
            for row in logits:
                top = torch.topk(row, TOP).indices.tolist()
                cols = sorted(set(sample) | set(top))
                checked.append(cols)
                values.append([float(row[c]) for c in cols])
            out = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None,
                                 pad_token_id=0, output_scores=True, return_dict_in_generate=True)
            greedy = out.sequences[0, len(ids):].tolist()
            margins = []
            for s in out.scores:
                t2 = torch.topk(s[0].float(), 2).values
                margins.append(float(t2[0] - t2[1]))
            doc["prompts"].append({"text": text, "ids": ids})
            doc["checked_ids"].append(checked)
            doc["logits"].append(values)
            doc["greedy"].append(greedy)
            doc["margins"].append(margins)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): greedy {[tok.decode(g) for g in doc['greedy']]}")


if __name__ == "__main__":
    main()
