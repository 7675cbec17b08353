#!/usr/bin/env python3
"""Train a tiny LLaMA from scratch on the arith task, with the span rule as the attention
mask (--attn span) or an ordinary causal mask (--attn dense, the dense twin).

Data: sspan-datagen arith JSONL (the C++ generator is the source of truth), prepared by
scripts/train_data.py: BOS + prompt + completion + EOS, loss on the completion and EOS,
span masks from scripts/span_rule.py (the engine's rule; tests/data/mask_trace_test.py
checks the masks this script builds against the engine's --span-trace). Batches are
length-sorted and hold at most --batch-tokens padded tokens.

Schedule over tokens, never wall time, so a run that is paused (SIGSTOP) or slowed by a
busy machine trains exactly the same: linear warmup over --warmup-tokens, then cosine to
10% of --lr at --train-tokens (completion tokens seen).

Stopping: SIGTERM or SIGINT ends the run after the current step with a checkpoint, as
--max-minutes does; --resume continues it.

Checkpoints: OUT/checkpoint.pt every --checkpoint-tokens and at every evaluation, with
the optimizer, the schedule position and the data order, so --resume OUT/checkpoint.pt
continues the run as if it had never stopped. --init PATH starts a new schedule from
the weights of an earlier run (the next curriculum stage), a checkpoint.pt or an export
directory (a model in models/ continues training in a later session). Each checkpoint also exports
the HF layout (model.safetensors fp16, config.json, generation_config.json,
tokenizer.model) to OUT/export.

Learning curve: every --eval-tokens, the held-out loss on the first --eval-records
held-out records and, with --engine-eval PATH_TO_SSPAN_EVAL, greedy accuracy and mean
sparsity of those records decoded by the engine from the export (--span arith for span
models, dense for the twin), appended to OUT/curve.jsonl. scripts/curve_table.py prints it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_llama import TinyConfig, TinyLlama, config_dict, export_hf, param_count, warmup_cosine_lr  # noqa: E402
from train_data import epoch_batches, make_batch, prepare  # noqa: E402


def init_weights(path: str, device) -> dict:
    """The weights --init names: a checkpoint.pt, or an export's model.safetensors (fp16,
    widened to fp32), so a shipped model can continue training in a new schedule."""
    if os.path.isdir(path):
        from safetensors.torch import load_file  # noqa: PLC0415
        weights = os.path.join(path, "model.safetensors")
        if not os.path.exists(weights):
            sys.exit(f"--init {path}: no model.safetensors in that directory")
        return {k: v.to(device, torch.float32) for k, v in load_file(weights).items()}
    return torch.load(path, map_location=device)["model"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attn", choices=["span", "dense"], required=True)
    ap.add_argument("--train", required=True, help="arith JSONL from sspan-datagen")
    ap.add_argument("--heldout", required=True, help="held-out arith JSONL (sspan-datagen --exclude TRAIN)")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.model")
    ap.add_argument("--out", required=True, help="output directory (train.log, curve.jsonl, checkpoint.pt, export/)")
    ap.add_argument("--train-tokens", type=float, required=True, help="completion tokens of the schedule")
    ap.add_argument("--warmup-tokens", type=float, default=2e5)
    ap.add_argument("--batch-tokens", type=int, default=16384, help="padded tokens per batch")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=1024, help="longest completion kept")
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--max-positions", type=int, default=2048)
    ap.add_argument("--eval-tokens", type=float, default=2e6, help="completion tokens between evaluations")
    ap.add_argument("--eval-records", type=int, default=200)
    ap.add_argument("--engine-eval", help="sspan-eval binary: greedy accuracy of the export at every evaluation")
    ap.add_argument("--engine-threads", type=int, default=0, help="threads of sspan-eval (0: --threads)")
    ap.add_argument("--checkpoint-tokens", type=float, default=1e6)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (with a checkpoint) after this wall time; "
                    "the schedule does not depend on it, --resume continues")
    ap.add_argument("--init", help="checkpoint.pt, or a model directory with model.safetensors (an export, "
                    "e.g. models/arith-long), whose weights start a new schedule")
    ap.add_argument("--resume", help="checkpoint.pt of this run to continue exactly")
    ap.add_argument("--cache", help="directory for prepared data (default OUT/../cache)")
    ap.add_argument("--prepare-workers", type=int, default=2)
    return ap.parse_args(argv)


class Run:
    def __init__(self, args):
        self.args = args
        os.makedirs(args.out, exist_ok=True)
        self.log_file = open(os.path.join(args.out, "train.log"), "a", encoding="utf-8")
        self.curve_path = os.path.join(args.out, "curve.jsonl")

    def log(self, msg):
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()


def lr_at(args, tokens: float) -> float:
    """Warmup then cosine over completion tokens (tiny_llama.warmup_cosine_lr's shape)."""
    if tokens < args.warmup_tokens:
        return args.lr * (tokens + 1) / args.warmup_tokens
    progress = (tokens - args.warmup_tokens) / max(1.0, args.train_tokens - args.warmup_tokens)
    return warmup_cosine_lr(1 << 30, progress, args.lr, 0)


def batch_loss(model, data, idx, vocab, device):
    """-> (mean loss over the batch's target tokens, number of target tokens)."""
    ids, targets, mask = make_batch(data, idx)
    logits = model(ids.to(device), None if mask is None else mask.to(device))
    loss = F.cross_entropy(logits.view(-1, vocab), targets.to(device).view(-1), ignore_index=-100)
    return loss, int((targets != -100).sum())


@torch.no_grad()
def heldout_loss(model, data, vocab, device, batch_tokens):
    model.eval()
    total = count = 0.0
    for idx in epoch_batches(data, batch_tokens, seed=0, epoch=0):
        loss, n = batch_loss(model, data, idx, vocab, device)
        total += float(loss) * n
        count += n
    model.train()
    return total / max(1.0, count)


def engine_eval(args, run, export_dir, eval_file):
    """Greedy accuracy and sparsity of the export by sspan-eval -> {bucket: {...}}."""
    span = "arith" if args.attn == "span" else "dense"
    cmd = [args.engine_eval, "-m", export_dir, "-d", eval_file, "--span", span, "--batch", "16",
           "-n", str(args.max_tokens + 64), "--bucket", "256", "--format", "json",
           "-t", str(args.engine_threads or args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        run.log(f"engine eval failed ({res.returncode}): {res.stderr.strip()[-500:]}")
        return None
    rows = json.loads(res.stdout[res.stdout.index("["):])
    return {r["bucket"]: {"n": r["n"], "accuracy": r["accuracy"], "mean_sparsity": r["mean_sparsity"]} for r in rows}


def save_checkpoint(run, model, opt, state, tokenizer):
    path = os.path.join(run.args.out, "checkpoint.pt")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                "config": config_dict(model.cfg), "args": vars(run.args),
                "torch_rng": torch.get_rng_state()}, path + ".tmp")
    os.replace(path + ".tmp", path)
    export_hf(model, tokenizer, os.path.join(run.args.out, "export"))


def main(argv=None):
    args = parse_args(argv)
    run = Run(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    cache = args.cache or os.path.join(os.path.dirname(os.path.abspath(args.out)), "cache")
    train = prepare(args.train, args.tokenizer, args.attn, args.max_tokens, cache_dir=cache,
                    workers=args.prepare_workers, log=run.log)
    heldout = prepare(args.heldout, args.tokenizer, args.attn, args.max_tokens, limit=args.eval_records,
                      cache_dir=cache, workers=1, log=run.log)
    eval_file = os.path.join(args.out, "heldout_eval.jsonl")
    with open(args.heldout, encoding="utf-8") as f, open(eval_file, "w", encoding="utf-8") as g:
        kept = 0
        for line in f:  # the same records the loss is measured on (length limit included)
            if not line.strip() or kept >= len(heldout):
                continue
            if len(sp.encode(json.loads(line)["completion"])) <= args.max_tokens:
                g.write(line if line.endswith("\n") else line + "\n")
                kept += 1

    cfg = TinyConfig(vocab_size=sp.get_piece_size(), hidden_size=args.hidden, intermediate_size=args.intermediate,
                     num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.heads,
                     max_position_embeddings=args.max_positions)
    model = TinyLlama(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)
    state = {"step": 0, "tokens": 0, "epoch": 0, "batch": 0, "loss_avg": None, "cpu_s": 0.0,
             "next_eval": args.eval_tokens, "next_ckpt": args.checkpoint_tokens}
    if args.resume:
        ck = torch.load(args.resume, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        torch.set_rng_state(ck["torch_rng"])
        run.log(f"resumed from {args.resume} at step {state['step']}, {state['tokens']} tokens")
    elif args.init:
        model.load_state_dict(init_weights(args.init, device))
        run.log(f"weights from {args.init}")
    run.log(f"attn={args.attn} device={device} threads={args.threads} params={param_count(model)} "
            f"train={len(train)} heldout={len(heldout)} config={config_dict(cfg)} args={vars(args)}")

    def evaluate():
        t0 = time.time()
        hl = heldout_loss(model, heldout, cfg.vocab_size, device, args.batch_tokens)
        state["last_eval"] = state["tokens"]
        save_checkpoint(run, model, opt, state, args.tokenizer)
        entry = {"step": state["step"], "tokens": state["tokens"], "train_loss": state["loss_avg"],
                 "heldout_loss": hl, "train_cpu_s": round(state["cpu_s"], 1), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        if args.engine_eval:
            buckets = engine_eval(args, run, os.path.join(args.out, "export"), eval_file)
            if buckets:
                entry["accuracy"] = buckets["all"]["accuracy"]
                entry["mean_sparsity"] = buckets["all"]["mean_sparsity"]
                entry["buckets"] = buckets
        with open(run.curve_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        acc = f" greedy accuracy {entry['accuracy']:.3f} sparsity {entry['mean_sparsity']:.3f}" if "accuracy" in entry else ""
        run.log(f"eval step {state['step']} tokens {state['tokens']} heldout loss {hl:.4f}{acc} "
                f"({len(heldout)} held-out, {time.time() - t0:.0f} s)")

    stop_signal = []  # the signal that asked the run to stop, once one has
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop_signal.append(signum))
    start = time.time()
    cpu_start = time.process_time()
    tokens_at_start = state["tokens"]
    batches = epoch_batches(train, args.batch_tokens, args.seed, state["epoch"])
    while state["tokens"] < args.train_tokens:
        if state["batch"] >= len(batches):
            state["epoch"] += 1
            state["batch"] = 0
            batches = epoch_batches(train, args.batch_tokens, args.seed, state["epoch"])
        idx = batches[state["batch"]]
        state["batch"] += 1
        lr = lr_at(args, state["tokens"])
        for g in opt.param_groups:
            g["lr"] = lr
        c0 = time.process_time()
        loss, n = batch_loss(model, train, idx, cfg.vocab_size, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["cpu_s"] += time.process_time() - c0  # CPU seconds of training steps (all threads)
        state["step"] += 1
        state["tokens"] += n
        lv = float(loss.detach())
        state["loss_avg"] = lv if state["loss_avg"] is None else 0.98 * state["loss_avg"] + 0.02 * lv
        if state["step"] % 50 == 0:
            done = state["tokens"] - tokens_at_start
            run.log(f"step {state['step']} loss {state['loss_avg']:.4f} lr {lr:.2e} tokens {state['tokens']} "
                    f"epoch {state['epoch']} | {done / max(1e-9, time.process_time() - cpu_start):.0f} tokens/cpu-s "
                    f"{done / max(1e-9, time.time() - start):.0f} tokens/s wall")
        if state["tokens"] >= state["next_eval"]:
            state["next_eval"] += args.eval_tokens
            state["next_ckpt"] = state["tokens"] + args.checkpoint_tokens
            evaluate()
        elif state["tokens"] >= state["next_ckpt"]:
            state["next_ckpt"] += args.checkpoint_tokens
            save_checkpoint(run, model, opt, state, args.tokenizer)
            run.log(f"step {state['step']}: checkpoint and export written to {args.out}")
        timed_out = args.max_minutes and time.time() - start > args.max_minutes * 60
        if timed_out or stop_signal:
            save_checkpoint(run, model, opt, state, args.tokenizer)
            why = f"after {args.max_minutes} min" if timed_out else f"on {signal.Signals(stop_signal[0]).name}"
            run.log(f"stopped {why} at {state['tokens']} tokens; --resume continues")
            return
    if state.get("last_eval") != state["tokens"] or not os.path.exists(run.curve_path):
        evaluate()  # unless the last step's evaluation was just written
    with open(os.path.join(args.out, "result.json"), "w") as f:
        last = json.loads(open(run.curve_path).read().splitlines()[-1])
        json.dump({"attn": args.attn, "params": param_count(model), **last}, f, indent=2)
    run.log(f"done: {state['tokens']} tokens, {state['step']} steps")


if __name__ == "__main__":
    main()
