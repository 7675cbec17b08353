#!/usr/bin/env python3
"""Per-record statistics of `sspan-eval --samples FILE` on an arith lines-layout test set
(docs/datasets.md, "Layouts"), per policy: the histogram of each solution's mean sparsity,
and where wrong solutions first go wrong, by their first line that differs from the
reference trace:
  references  the reference list ("[-1,k]") is not the step's
  operand     the running value or the operation's operator/literal is miscopied
  result      "a op b=v" with the operands right and v wrong
  value line  the final "[-1] v" line differs from the last step's value
  length      the output stops early or runs on past the reference
  format      the right reference list followed by something that is not "a op b=v"
Also prints, per policy, the share of steps that were right before the first error.

Usage: arith_samples.py SAMPLES.jsonl   (stdlib only)
"""
import collections
import json
import re
import sys

STEP = re.compile(r"(\[[-0-9,]+\]) (-?\d+) ([-+*/]) (-?\d+)=(-?\d+)$")
VALUE = re.compile(r"\[-1\] -?\d+")


def classify(out_line, ref_line):
    """The class of the first differing line."""
    if out_line is None or ref_line is None:
        return "length"
    o, r = STEP.match(out_line), STEP.match(ref_line)
    if r is None:  # the value line "[-1] v", or a split step's lines
        return "value line" if VALUE.fullmatch(ref_line) else "format"
    if o is None:
        return "references" if not out_line.startswith(r.group(1) + " ") else "format"
    if o.group(1) != r.group(1):
        return "references"
    if o.group(2, 3, 4) != r.group(2, 3, 4):
        return "operand"
    return "result"


def main(path):
    per_policy = collections.defaultdict(lambda: {"n": 0, "right": 0, "first": collections.Counter(),
                                                  "steps_before": 0, "steps_total": 0,
                                                  "sparsity": collections.Counter()})
    with open(path) as f:
        for line in f:
            s = json.loads(line)
            p = per_policy[s["policy"]]
            p["n"] += 1
            p["sparsity"][min(9, int(s["sparsity"] * 10))] += 1
            ref = s["reference"].strip("\n").split("\n")
            out = s["output"].strip("\n").split("\n")
            p["steps_total"] += len(ref)
            if s.get("correct"):
                p["right"] += 1
                p["steps_before"] += len(ref)
                continue
            k = next((i for i in range(max(len(ref), len(out)))
                      if i >= len(ref) or i >= len(out) or ref[i] != out[i]), None)
            if k is None:  # same lines, still wrong: cannot happen for a consistent record
                p["first"]["format"] += 1
                continue
            p["steps_before"] += min(k, len(ref))
            p["first"][classify(out[k] if k < len(out) else None, ref[k] if k < len(ref) else None)] += 1
    for policy, p in per_policy.items():
        wrong = p["n"] - p["right"]
        print(f"{policy}: {p['right']}/{p['n']} right; first error of the {wrong} wrong: "
              + ", ".join(f"{c} {k}" for c, k in p["first"].most_common()))
        print(f"  lines right before the first error: {p['steps_before'] / max(1, p['steps_total']):.1%} "
              f"of {p['steps_total']} reference lines")
        print("  mean sparsity of a solution | records")
        for b in range(10):
            k = p["sparsity"][b]
            print(f"  {b / 10:.1f}-{(b + 1) / 10:.1f} | {k:5d} {'#' * round(50 * k / p['n'])}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
