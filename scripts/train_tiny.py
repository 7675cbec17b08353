#!/usr/bin/env python3
"""Train a tiny LLaMA from scratch on the arith task, with the span rule as the attention
mask (--attn span) or an ordinary causal mask (--attn dense, the dense twin).

Data: sspan-datagen arith JSONL (the C++ generator is the source of truth). A sequence
is BOS + encode(prompt) + encode(completion) + EOS; the loss covers the completion and
EOS only. Masks come from scripts/span_rule.py over the token texts, the same rule the
engine applies while serving. Stops by wall time (--max-minutes) or --max-steps, and
exports the HF layout (model.safetensors fp16, config.json, generation_config.json,
tokenizer.model) to OUT/export at every checkpoint and at the end.

Schedule: linear warmup, then cosine to 10% of --lr. With --max-steps it runs over steps
(deterministic); otherwise over wall time, so a machine whose load changes still ends
the schedule when --max-minutes is up. --init continues from an earlier checkpoint.pt
(weights only; a fresh optimizer and schedule).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import sentencepiece as spm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from span_rule import attended_ranges  # noqa: E402
from tiny_llama import TinyConfig, TinyLlama, config_dict, export_hf, warmup_cosine_lr, param_count  # noqa: E402


def token_text(sp: spm.SentencePieceProcessor, i: int) -> str:
    """The text a token stands for, as the engine's Tokenizer::token_bytes gives it."""
    if sp.is_control(i) or sp.is_unknown(i):
        return ""
    piece = sp.id_to_piece(i)
    if sp.is_byte(i):
        return bytes([int(piece[3:5], 16)]).decode("utf-8", errors="replace")
    return piece.replace("\u2581", " ")


class Example:
    __slots__ = ("ids", "n_prompt", "texts", "answer", "prompt", "completion")

    def __init__(self, sp, rec):
        p = sp.encode(rec["prompt"])
        c = sp.encode(rec["completion"])
        self.ids = [sp.bos_id()] + p + c + [sp.eos_id()]
        self.n_prompt = 1 + len(p)
        self.texts = [token_text(sp, i) for i in self.ids]
        self.answer = str(rec["answer"])
        self.prompt = rec["prompt"]
        self.completion = rec["completion"]


def load_examples(sp, path, max_tokens, limit=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            ex = Example(sp, json.loads(line))
            if len(ex.ids) - ex.n_prompt - 1 <= max_tokens:
                out.append(ex)
            if limit and len(out) >= limit:
                break
    return out


def row_masks(texts, n_prompt, attn):
    """Rows of the attention mask as ranges; dense: the causal prefix."""
    if attn == "dense":
        return [[(0, t + 1)] for t in range(len(texts))]
    return [r for _, r in attended_ranges(texts, n_prompt, "arith")]


def length_buckets(n, lengths, batch, rng, pool=64):
    """One epoch of batches: shuffle, sort pools of `pool` batches by length so a batch
    pads little, then shuffle the batches."""
    order = list(range(n))
    rng.shuffle(order)
    out = []
    for p in range(0, n, batch * pool):
        chunk = sorted(order[p:p + batch * pool], key=lambda i: lengths[i])
        out += [chunk[k:k + batch] for k in range(0, len(chunk), batch)]
    rng.shuffle(out)
    return out


def make_batch(examples, attn):
    """-> ids [B, T], targets [B, T] (-100 = no loss), mask [B, T, T] bool."""
    t_max = max(len(e.ids) - 1 for e in examples)
    b = len(examples)
    ids = torch.zeros((b, t_max), dtype=torch.long)
    targets = torch.full((b, t_max), -100, dtype=torch.long)
    mask = torch.zeros((b, t_max, t_max), dtype=torch.bool)
    for i, e in enumerate(examples):
        n = len(e.ids) - 1
        ids[i, :n] = torch.tensor(e.ids[:-1])
        # position t predicts token t+1; learn the completion tokens and EOS
        targets[i, e.n_prompt - 1:n] = torch.tensor(e.ids[e.n_prompt:])
        for t, ranges in enumerate(row_masks(e.texts[:-1], e.n_prompt, attn)):
            for lo, hi in ranges:
                mask[i, t, lo:hi] = True
        for t in range(n, t_max):
            mask[i, t, t] = True  # padding rows attend to themselves only (no NaN)
    return ids, targets, mask


@torch.no_grad()
def greedy(model, sp, ex, attn, device, max_new):
    """Greedy continuation of ex's prompt with the mask rule applied at every step."""
    ids = ex.ids[:ex.n_prompt]
    texts = ex.texts[:ex.n_prompt]
    for _ in range(max_new):
        rows = row_masks(texts, ex.n_prompt, attn)
        t = len(ids)
        mask = torch.zeros((1, t, t), dtype=torch.bool)
        for r, ranges in enumerate(rows):
            for lo, hi in ranges:
                mask[0, r, lo:hi] = True
        logits = model(torch.tensor([ids], device=device), mask.to(device))
        nxt = int(logits[0, -1].argmax())
        if nxt == sp.eos_id():
            break
        ids.append(nxt)
        texts.append(token_text(sp, nxt))
    return "".join(texts[ex.n_prompt:])


def evaluate(model, sp, examples, attn, device):
    """-> (answer accuracy, exact-trace accuracy). The answer is the last line's value."""
    model.eval()
    right = exact = 0
    for ex in examples:
        out = greedy(model, sp, ex, attn, device, max_new=len(ex.ids) - ex.n_prompt + 16)
        last = out.rsplit("\n", 1)[-1]
        value = last.split("] ", 1)[-1].strip()
        right += value == ex.answer
        exact += out == ex.completion
    model.train()
    return right / len(examples), exact / len(examples)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attn", choices=["span", "dense"], required=True)
    ap.add_argument("--train", required=True, help="arith JSONL from sspan-datagen")
    ap.add_argument("--heldout", required=True, help="held-out arith JSONL (another seed)")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.model")
    ap.add_argument("--out", required=True, help="output directory (logs, checkpoint, export/)")
    ap.add_argument("--max-minutes", type=float, default=75.0)
    ap.add_argument("--max-steps", type=int, default=0, help="0: derive from --max-minutes")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=256, help="longest completion kept")
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--eval-examples", type=int, default=40)
    ap.add_argument("--final-eval-examples", type=int, default=100)
    ap.add_argument("--checkpoint-minutes", type=float, default=10.0)
    ap.add_argument("--init", help="checkpoint.pt to start from (weights only)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "train.log")
    log_file = open(log_path, "a", encoding="utf-8")

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    start = time.time()
    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    train = load_examples(sp, args.train, args.max_tokens)
    heldout = load_examples(sp, args.heldout, args.max_tokens, limit=args.final_eval_examples)
    cfg = TinyConfig(vocab_size=sp.get_piece_size(), hidden_size=args.hidden,
                     intermediate_size=args.intermediate, num_hidden_layers=args.layers,
                     num_attention_heads=args.heads, num_key_value_heads=args.heads)
    model = TinyLlama(cfg).to(device)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location=device)["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    log(f"attn={args.attn} device={device} threads={args.threads} params={param_count(model)} "
        f"train={len(train)} heldout={len(heldout)} config={config_dict(cfg)} args={vars(args)}")

    final_reserve = 60.0 + 2.0 * args.final_eval_examples  # seconds kept for the end
    budget = args.max_minutes * 60.0 - final_reserve
    total_steps = args.max_steps or 10**9
    by_time = not args.max_steps
    step = tokens_seen = 0
    loss_avg = None
    last_ckpt = time.time()
    batches = []
    train_start = time.time()
    train_budget = budget - (train_start - start)
    while step < total_steps and time.time() - start < budget:
        if not batches:
            batches = length_buckets(len(train), [len(e.ids) for e in train], args.batch, rng)
        batch = [train[i] for i in batches.pop()]
        ids, targets, mask = make_batch(batch, args.attn)
        if by_time:  # the schedule runs over the wall-time budget
            progress = (time.time() - train_start) / train_budget
        else:
            progress = (step - args.warmup) / max(1, total_steps - args.warmup)
        lr = warmup_cosine_lr(step, progress, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(ids.to(device), mask.to(device))
        loss = F.cross_entropy(logits.view(-1, cfg.vocab_size), targets.to(device).view(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += int((targets != -100).sum())
        loss_value = float(loss.detach())
        loss_avg = loss_value if loss_avg is None else 0.98 * loss_avg + 0.02 * loss_value
        if step % 50 == 0:
            log(f"step {step} loss {loss_avg:.4f} lr {lr:.2e} tokens {tokens_seen} "
                f"elapsed {(time.time() - start) / 60:.1f} min")
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            acc, exact = evaluate(model, sp, heldout[:args.eval_examples], args.attn, device)
            log(f"step {step} greedy answer acc {acc:.3f} exact-trace {exact:.3f} "
                f"({args.eval_examples} held-out)")
            checkpoint(model, opt, step, args, log)
            last_ckpt = time.time()
    checkpoint(model, opt, step, args, log)
    acc, exact = evaluate(model, sp, heldout, args.attn, device)
    log(f"final step {step} tokens {tokens_seen} loss {loss_avg:.4f} greedy answer acc {acc:.3f} "
        f"exact-trace {exact:.3f} ({len(heldout)} held-out) wall {(time.time() - start) / 60:.1f} min")
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump({"attn": args.attn, "steps": step, "tokens_seen": tokens_seen, "loss": loss_avg,
                   "answer_acc": acc, "exact_trace_acc": exact, "heldout": len(heldout),
                   "wall_minutes": (time.time() - start) / 60, "params": param_count(model)}, f, indent=2)


def checkpoint(model, opt, step, args, log):
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step},
               os.path.join(args.out, "checkpoint.pt"))
    export_hf(model, args.tokenizer, os.path.join(args.out, "export"))
    log(f"step {step}: checkpoint and export written to {args.out}")


if __name__ == "__main__":
    main()
