#!/usr/bin/env python3
"""Print the learning curves that scripts/train_tiny.py writes (RUN/curve.jsonl) as one
markdown table: per evaluation, completion tokens seen, training and held-out loss,
greedy accuracy (with its standard error) and mean sparsity of the held-out records.

usage: curve_table.py NAME=RUN_DIR [NAME=RUN_DIR ...]   (stdlib only)
A run continued in a later stage (--init) is a second NAME=DIR; --offset NAME=TOKENS
adds the tokens of earlier stages so the column counts from the start of training.
"""
import argparse
import json
import math
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    ap.add_argument("--offset", action="append", default=[], help="NAME=TOKENS seen before this run")
    args = ap.parse_args()
    offsets = {k: float(v) for k, v in (o.split("=", 1) for o in args.offset)}
    print("| run | tokens seen (M) | train loss | held-out loss | greedy accuracy % (± s.e.) | n | mean sparsity | train CPU h |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for spec in args.runs:
        name, run_dir = spec.split("=", 1)
        path = os.path.join(run_dir, "curve.jsonl")
        if not os.path.exists(path):
            print(f"| {name} | (no curve.jsonl in {run_dir}) | | | | | | |")
            continue
        for line in open(path, encoding="utf-8"):
            e = json.loads(line)
            tokens = (e["tokens"] + offsets.get(name, 0)) / 1e6
            acc = n = sparsity = ""
            if "accuracy" in e:
                n = e["buckets"]["all"]["n"]
                p = e["accuracy"]
                acc = f"{100 * p:.1f} ± {100 * math.sqrt(p * (1 - p) / max(1, n)):.1f}"
                sparsity = f"{e['mean_sparsity']:.3f}"
            train = f"{e['train_loss']:.4f}" if e.get("train_loss") is not None else ""
            cpu = f"{e.get('train_cpu_s', 0) / 3600:.2f}"
            print(f"| {name} | {tokens:.2f} | {train} | {e['heldout_loss']:.4f} | {acc} | {n} | {sparsity} | {cpu} |")


if __name__ == "__main__":
    main()
