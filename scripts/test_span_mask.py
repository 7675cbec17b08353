#!/usr/bin/env python3
"""Checks that a LlamaForCausalLM given span_mask.batch_additive_mask attends exactly to
the span rule's keys, with the eager and the sdpa attention.

The reference needs no mask at all: in a 1-layer model the keys and values of a token
depend only on the token and its position, so the logits of x_t under its span S_t
equal the last logits of a plain causal forward over the tokens of S_t alone, given
their original positions as position_ids. Also checks that right padding in a batch
changes nothing and that the causal mode matches transformers' own causal mask.
Run by hand: /path/to/python scripts/test_span_mask.py (prints one line per check).
"""
from __future__ import annotations

import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from span_mask import batch_additive_mask, span_mask_bool

# Figure 5 of the paper, one character per token: every kind of line of the grammar.
PROMPT = "(42 * 56) + (5 * 32) [0]\n"
COMPLETION = ("[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n"
              "[-1] So 42 * 56=2352 [1]\n"
              "[0,1] 5 * 32=160 [2]\n"
              "[0,1,2] 2512")
TOL = 1e-5


def tiny_model(layers: int, attn: str) -> LlamaForCausalLM:
    torch.manual_seed(5)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         attn_implementation=attn)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model


def texts_and_ids():
    texts = [""] + list(PROMPT) + list(COMPLETION)
    ids = [1] + [3 + ord(c) % 120 for c in PROMPT + COMPLETION]  # any fixed token per character
    return texts, ids, 1 + len(PROMPT)


def check(name: str, diff: float, limit: float = TOL) -> bool:
    ok = diff <= limit
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| {diff:.3g} (at most {limit:g})")
    return ok


def check_differs(name: str, diff: float, least: float) -> bool:
    ok = diff >= least
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| {diff:.3g} (at least {least:g})")
    return ok


def main() -> int:
    texts, ids, n_prompt = texts_and_ids()
    mask = span_mask_bool(texts, n_prompt, "arith")  # [T, T]
    n = len(ids)
    sparse_rows = int((mask.sum(1) < torch.arange(1, n + 1)).sum())
    print(f"sequence of {n} tokens, {sparse_rows} rows attend to fewer keys than causal")
    ok = sparse_rows > 0
    x = torch.tensor([ids])  # [1, T]

    for attn in ("eager", "sdpa"):
        model = tiny_model(1, attn)
        with torch.no_grad():
            got = model(x, attention_mask=batch_additive_mask([mask], n, torch.float32)).logits[0]  # [T, V]
            worst = 0.0
            for t in range(n):
                keys = mask[t].nonzero().flatten()  # [|S_t|] ascending, ends with t
                ref = model(x[:, keys], position_ids=keys.unsqueeze(0)).logits[0, -1]  # [V]
                worst = max(worst, (got[t] - ref).abs().max().item())
            ok &= check(f"{attn}: span-masked logits == forward over each span alone", worst)

            # Padding: a batch of the sequence and a shorter prefix, right padded.
            short = n_prompt + 10
            pair = torch.tensor([ids, ids[:short] + [0] * (n - short)])  # [2, T]
            masks = [mask, span_mask_bool(texts[:short], n_prompt, "arith")]
            batched = model(pair, attention_mask=batch_additive_mask(masks, n, torch.float32)).logits
            single = model(x[:, :short], attention_mask=batch_additive_mask(masks[1:], short, torch.float32)).logits
            diff = max((batched[0] - got).abs().max().item(), (batched[1, :short] - single[0]).abs().max().item())
            ok &= check(f"{attn}: right-padded batch == sequences alone", diff)

            causal = span_mask_bool(texts, n_prompt, None)
            dense = model(x, attention_mask=batch_additive_mask([causal], n, torch.float32)).logits
            plain = model(x).logits
            ok &= check(f"{attn}: causal 4D mask == transformers' own causal mask", (dense - plain).abs().max().item())
            ok &= check_differs(f"{attn}: span mask changes the logits", (got - plain[0]).abs().max().item(), 1e-3)

    # Multi-layer: eager and sdpa agree under the span mask.
    outs = []
    for attn in ("eager", "sdpa"):
        with torch.no_grad():
            outs.append(tiny_model(2, attn)(x, attention_mask=batch_additive_mask([mask], n, torch.float32)).logits)
    ok &= check("2 layers: eager == sdpa under the span mask", (outs[0] - outs[1]).abs().max().item())
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
