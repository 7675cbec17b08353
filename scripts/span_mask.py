"""Training-side span masks: token texts as the engine sees them, and the 4D additive
attention mask that makes a Hugging Face LlamaForCausalLM attend exactly to the span of
docs/span-semantics.md (computed by span_rule.attended_ranges).

How transformers (>= 5) takes the mask: LlamaModel.forward passes `attention_mask` to
masking_utils.create_causal_mask, which returns a 4D tensor unchanged (it is "already
prepared"). The eager attention adds it to the scores; the sdpa attention passes it as
`attn_mask` and turns `is_causal` off because a mask is present. So the mask must hold
causality itself: 0 where a key is attended, a large negative number elsewhere.
scripts/test_span_mask.py checks both implementations against a hand-written attention.
"""
from __future__ import annotations

import codecs

import torch

from span_rule import attended_ranges


def token_texts(sp, ids: list[int]) -> list[str]:
    """The text each token stands for, as the engine's streaming decoder yields it:
    "▁" is a space, byte pieces ("<0x0A>") are bytes, control tokens (BOS, EOS) are "",
    and a character split over byte pieces belongs to the token that completes it."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = []
    for i in ids:
        if sp.is_control(i) or sp.is_unknown(i):
            out.append("")
            continue
        if sp.is_byte(i):
            piece = sp.id_to_piece(i)  # "<0xNN>"
            data = bytes([int(piece[3:5], 16)])
        else:
            data = sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8")
        out.append(decoder.decode(data))
    return out


def span_mask_bool(texts: list[str], n_prompt: int, grammar: str | None) -> torch.Tensor:
    """[T, T] bool, row t = the keys of x_t. grammar None: the ordinary causal mask."""
    n = len(texts)
    if grammar is None:
        return torch.ones(n, n, dtype=torch.bool).tril()
    mask = torch.zeros(n, n, dtype=torch.bool)  # [T, T]
    for t, (_, ranges) in enumerate(attended_ranges(texts, n_prompt, grammar)):
        for begin, end in ranges:
            if not 0 <= begin < end <= t + 1:
                raise ValueError(f"span rule gave range [{begin}, {end}) for position {t}")
            mask[t, begin:end] = True
        if not mask[t, t]:
            raise ValueError(f"span rule left position {t} out of its own span")
    return mask


def batch_additive_mask(masks: list[torch.Tensor], length: int, dtype: torch.dtype) -> torch.Tensor:
    """Stack per-sequence [T_i, T_i] bool masks into the [B, 1, L, L] additive mask.

    Sequences are right padded to `length`: a padding query attends only to itself (no
    row may be empty, or softmax gives NaN) and no real query sees a padding key."""
    allowed = torch.eye(length, dtype=torch.bool).repeat(len(masks), 1, 1)  # [B, L, L]
    for b, m in enumerate(masks):
        n = m.shape[0]
        allowed[b, :n, :n] = m
    additive = torch.zeros(allowed.shape, dtype=dtype)  # [B, L, L]
    additive.masked_fill_(~allowed, torch.finfo(dtype).min)
    return additive.unsqueeze(1)  # [B, 1, L, L]


def mean_sparsity(mask: torch.Tensor, first: int) -> float:
    """Mean of 1 - |S_t| / (t + 1) over positions t >= first of a [T, T] bool mask."""
    n = mask.shape[0]
    if first >= n:
        return 0.0
    t = torch.arange(first, n)
    return float((1.0 - mask[first:].sum(1) / (t + 1)).mean())
