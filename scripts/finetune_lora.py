#!/usr/bin/env python3
"""LoRA fine-tuning of a LLaMA checkpoint on {prompt, completion} JSONL records with the
span rule as the attention mask (the paper's training path; --dense for the baseline).

Each record becomes [BOS] + prompt tokens + completion tokens + [EOS]; the prompt is
encoded as the engine encodes a prompt (SentencePiece with its dummy prefix) and the
completion as a continuation (no dummy prefix), and the loss covers completion tokens
and EOS only. The attention mask of every sequence comes from span_rule.attended_ranges
over the token texts (span_mask.py), so training sees exactly the spans the engine
will serve with. Defaults are the paper's: rank 64, alpha 64, dropout 0.05, lr 3e-4,
1 epoch, q/k/v/o projections. On CUDA: bf16 autocast and gradient checkpointing.

Writes the adapter (adapter_config.json + adapter_model.safetensors) to --out, with
train_log.jsonl (loss per optimizer step). scripts/merge_lora.py merges it.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM

from span_mask import batch_additive_mask, mean_sparsity, span_mask_bool, token_texts
from span_rule import GRAMMARS

IGNORE = -100  # label of tokens without loss


@dataclass
class Example:
    ids: list[int]          # [T] BOS + prompt + completion + EOS
    labels: list[int]       # [T] IGNORE on prompt positions
    mask: torch.Tensor      # [T, T] bool, row t = keys of x_t


def continuation_ids(sp: spm.SentencePieceProcessor, text: str) -> list[int]:
    """Encode text that continues earlier text: no dummy-prefix space. A leading "\n"
    (a byte piece that merges with nothing) resets SentencePiece's word start; its
    pieces are then dropped."""
    lead = sp.encode("\n")
    ids = sp.encode("\n" + text)
    if ids[:len(lead)] != lead:
        raise ValueError(f"unexpected tokenization of a continuation: {text[:40]!r}")
    return ids[len(lead):]


def load_examples(path: Path, sp, grammar: str | None, max_length: int) -> tuple[list[Example], dict]:
    examples, skipped, sparsity = [], 0, []
    with path.open() as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                prompt, completion = rec["prompt"], rec["completion"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{line_no}: expected a JSON object with prompt and completion ({e})")
            if not isinstance(prompt, str) or not isinstance(completion, str):
                raise ValueError(f"{path}:{line_no}: prompt and completion must be strings")
            prompt_ids = [sp.bos_id()] + sp.encode(prompt)
            ids = prompt_ids + continuation_ids(sp, completion) + [sp.eos_id()]
            if len(ids) > max_length:
                skipped += 1
                continue
            n_prompt = len(prompt_ids)
            mask = span_mask_bool(token_texts(sp, ids), n_prompt, grammar)
            sparsity.append(mean_sparsity(mask, n_prompt))
            labels = [IGNORE] * n_prompt + ids[n_prompt:]
            examples.append(Example(ids, labels, mask))
    if not examples:
        raise ValueError(f"{path}: no usable records (skipped {skipped} longer than {max_length} tokens)")
    stats = {"records": len(examples), "skipped_too_long": skipped,
             "mean_completion_sparsity": round(sum(sparsity) / len(sparsity), 4)}
    return examples, stats


def collate(batch: list[Example], pad_id: int, mask_dtype: torch.dtype):
    length = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)     # [B, L]
    labels = torch.full((len(batch), length), IGNORE, dtype=torch.long)  # [B, L]
    for b, e in enumerate(batch):
        ids[b, :len(e.ids)] = torch.tensor(e.ids)
        labels[b, :len(e.labels)] = torch.tensor(e.labels)
    mask = batch_additive_mask([e.mask for e in batch], length, mask_dtype)  # [B, 1, L, L]
    return ids, labels, mask


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="HF LLaMA checkpoint directory")
    ap.add_argument("--data", type=Path, required=True, help="JSONL of {prompt, completion} (sspan-datagen)")
    ap.add_argument("--out", type=Path, required=True, help="adapter output directory")
    ap.add_argument("--grammar", choices=GRAMMARS, default="arith", help="span grammar of the records")
    ap.add_argument("--dense", action="store_true", help="ordinary causal mask (the dense baseline)")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer.model (default BASE/tokenizer.model)")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=64)
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj", help="comma-separated module names")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=4, help="sequences per forward")
    ap.add_argument("--grad-accum", type=int, default=8, help="forwards per optimizer step")
    ap.add_argument("--warmup-steps", type=int, default=0, help="linear warmup, then linear decay to 0")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many optimizer steps (0: no limit)")
    ap.add_argument("--max-length", type=int, default=2048, help="records longer than this are skipped")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if args.rank <= 0 or args.batch_size <= 0 or args.grad_accum <= 0 or args.epochs <= 0:
        ap.error("--rank, --batch-size, --grad-accum and --epochs must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    cuda = args.device.startswith("cuda")

    tok_file = args.tokenizer or args.base / "tokenizer.model"
    if not tok_file.is_file():
        sys.exit(f"no tokenizer at {tok_file}: pass --tokenizer")
    sp = spm.SentencePieceProcessor(model_file=str(tok_file))
    grammar = None if args.dense else args.grammar
    try:
        examples, stats = load_examples(args.data, sp, grammar, args.max_length)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    stats["mask"] = "dense" if args.dense else f"span ({args.grammar})"
    print(json.dumps(stats))

    # On CUDA the frozen base is bf16 (13.5 GB for 7B); the LoRA weights stay fp32.
    base_dtype = torch.bfloat16 if cuda else torch.float32
    model = LlamaForCausalLM.from_pretrained(args.base, dtype=base_dtype, attn_implementation="sdpa")
    if model.config.vocab_size < sp.get_piece_size():
        sys.exit(f"tokenizer has {sp.get_piece_size()} pieces but the model only {model.config.vocab_size}")
    model.to(args.device)
    if cuda:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.dropout, bias="none",
                      target_modules=[t.strip() for t in args.targets.split(",") if t.strip()],
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    model.print_trainable_parameters()

    per_step = args.batch_size * args.grad_accum
    total_steps = math.ceil(len(examples) * args.epochs / per_step)
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)

    def lr_factor(step: int) -> float:
        if step < args.warmup_steps:
            return (step + 1) / args.warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - args.warmup_steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    # Order: the records, shuffled per epoch, repeated as needed for fractional epochs.
    order = []
    while len(order) < total_steps * per_step:
        epoch = list(range(len(examples)))
        random.shuffle(epoch)
        order += epoch
    mask_dtype = torch.bfloat16 if cuda else torch.float32

    args.out.mkdir(parents=True, exist_ok=True)
    log = (args.out / "train_log.jsonl").open("w")
    model.train()
    start = time.time()
    for step in range(total_steps):
        chunk = order[step * per_step:(step + 1) * per_step]
        micro = [chunk[i:i + args.batch_size] for i in range(0, len(chunk), args.batch_size)]
        # Weight each micro-batch by its share of the step's loss tokens.
        n_tokens = sum(sum(l != IGNORE for l in examples[i].labels[1:]) for i in chunk)
        step_loss = 0.0
        for mb in micro:
            ids, labels, mask = collate([examples[i] for i in mb], sp.pad_id() if sp.pad_id() >= 0 else 0, mask_dtype)
            ids, labels, mask = ids.to(args.device), labels.to(args.device), mask.to(args.device)
            mb_tokens = int((labels[:, 1:] != IGNORE).sum())
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            (loss * mb_tokens / n_tokens).backward()
            step_loss += loss.item() * mb_tokens / n_tokens
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        entry = {"step": step + 1, "loss": round(step_loss, 5), "lr": sched.get_last_lr()[0],
                 "elapsed_s": round(time.time() - start, 1)}
        log.write(json.dumps(entry) + "\n")
        log.flush()
        print(json.dumps(entry))
    log.close()

    model.save_pretrained(args.out, safe_serialization=True)
    (args.out / "train_args.json").write_text(json.dumps(
        {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()} | {"data_stats": stats},
        indent=2) + "\n")
    print(f"adapter written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
