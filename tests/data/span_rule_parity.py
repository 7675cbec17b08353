#!/usr/bin/env python3
"""scripts/span_rule.py and the engine's SpanState must give the same attended ranges.

Cases: arith and summary texts cut into random token texts (so brackets, newlines and
digits straddle tokens), plus mutated texts (unknown anchors, malformed and unterminated
lists, spaces, redefined anchors, several newlines in one token).
Usage: span_rule_parity.py SPAN_DUMP_EXE [cases]
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from span_rule import SpanEvents, attended_ranges  # noqa: E402

ARITH = [
    "(42 * 56) + (5 * 32) [0]\n[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n[-1] So 42 * 56=2352 [1]\n"
    "[0,1] 5 * 32=160 [2]\n[0,1,2] 2512",
    "8 - (6 + 4) [0]\n[-1] 6 + 4=10 [1]\n[0,1] -2",
    "Solve.\n(1 + 2) * 3 [0]\n[-1] 1 + 2=3 [1]\n[0, 1] 9",
]
SUMMARY = [
    "Summarize the article.\n0 : A fox ran.\n1 : It hid.\n2 : Night fell.\n(0-1) A fox hid.\n(2) Night came.",
    "Intro line\nmore intro\n 0: A.\n1 :B.\n(0) x\n(1-1, 0) y\n(0-1) z",
]
MUTATIONS = ["[7]", "[0,,1]", "[", "[ 0 ]", "(5-2)", "(0", "[-1]", "[1]", "()", "[0]\n\n[-1] q\n",
             " [0,1] ", "(-1)", "0 : again\n", "[0 ,1] x [3]\n", "[1234567890]", "\n"]


def cut(text, rng):
    texts, i = [""], 0
    while i < len(text):
        n = rng.choice([1, 1, 2, 3, 5])
        texts.append(text[i:i + n])
        i += n
    return texts


def cases(n, rng):
    out = []
    for k in range(n):
        grammar = "arith" if k % 2 == 0 else "summary"
        text = rng.choice(ARITH if grammar == "arith" else SUMMARY)
        if k % 3:
            for _ in range(rng.randint(1, 3)):
                at = rng.randint(0, len(text))
                text = text[:at] + rng.choice(MUTATIONS) + text[at:]
        texts = cut(text, rng)
        if k % 5 == 0:
            texts.insert(rng.randint(1, len(texts)), "")  # an empty token mid-stream
        out.append({"grammar": grammar, "n_prompt": rng.randint(1, len(texts)), "texts": texts})
    return out


def main():
    exe = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    all_cases = cases(n, random.Random(7))
    proc = subprocess.run([exe], input="".join(json.dumps(c) + "\n" for c in all_cases),
                          capture_output=True, text=True, check=True)
    for c, line in zip(all_cases, proc.stdout.splitlines(), strict=True):
        got = json.loads(line)
        ev = SpanEvents()
        want = attended_ranges(c["texts"], c["n_prompt"], c["grammar"], ev)
        want_rows = [[s, [list(r) for r in ranges]] for s, ranges in want]
        want_ev = [ev.sparse_lines, ev.dense_fallbacks, ev.unknown_anchors, ev.malformed_lists,
                   ev.redefined_anchors]
        for t, (a, b) in enumerate(zip(got["rows"], want_rows)):
            if a != b:
                sys.exit(f"mismatch at t={t} ({c['texts'][t]!r}): engine {a}, span_rule.py {b}\n"
                         f"case: {json.dumps(c)}")
        if got["events"] != want_ev:
            sys.exit(f"event counts differ: engine {got['events']}, span_rule.py {want_ev}\n"
                     f"case: {json.dumps(c)}")
    print(f"span_rule parity: {len(all_cases)} cases agree")


if __name__ == "__main__":
    main()
