#!/usr/bin/env python3
"""The training masks equal the engine's --span-trace for the same text.

For generated arith records, the engine scores BOS + prompt + completion with
`sspan-generate --score --span arith --span-trace`; the token texts in the trace are fed
to the function the training script builds its attention masks with
(scripts/span_rule.py: attended_ranges, as scripts/train_tiny.py's row_masks calls it),
and every position's mode and attended ranges must be identical.

usage: mask_trace_test.py SSPAN_GENERATE SSPAN_DATAGEN MODEL_DIR [COUNT]
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from span_rule import attended_ranges  # noqa: E402


def piece_text(piece: str) -> str:
    """The text a SentencePiece piece stands for (as Tokenizer::token_bytes gives it)."""
    if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
        return bytes([int(piece[3:5], 16)]).decode("utf-8", errors="replace")
    if piece in ("<s>", "</s>", "<unk>"):
        return ""
    return piece.replace("\u2581", " ")


def main() -> int:
    generate, datagen, model = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    records = subprocess.run([datagen, "arith", "--count", str(count), "--seed", "7", "--depth-mean", "2",
                              "--depth-sd", "1", "--digits-mean", "2", "--digits-sd", "1"],
                             check=True, capture_output=True, text=True).stdout.splitlines()
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n, line in enumerate(records):
            rec = json.loads(line)
            prompt, completion, trace = (os.path.join(tmp, f) for f in ("p.txt", "c.txt", "t.jsonl"))
            with open(prompt, "w") as f:
                f.write(rec["prompt"])
            with open(completion, "w") as f:
                f.write(rec["completion"])
            run = subprocess.run([generate, "-m", model, "-f", prompt, "--score", completion, "--span", "arith",
                                  "--span-trace", trace, "--json", "-q"], capture_output=True, text=True)
            if run.returncode != 0:
                print(f"record {n}: sspan-generate failed: {run.stderr}")
                return 1
            rows = [json.loads(l) for l in open(trace)][:-1]  # last line is the summary
            scored = json.loads(run.stdout)
            n_prompt = scored["prompt_tokens"]
            texts = [piece_text(r["piece"]) if r["pos"] else "" for r in rows]
            want = attended_ranges(texts, n_prompt, "arith")
            for r, (sparse, ranges) in zip(rows, want):
                got = [tuple(a) for a in r["attended"]]
                if (r["mode"] == "sparse") != sparse or got != [tuple(a) for a in ranges]:
                    print(f"record {n} position {r['pos']} ({r['piece']!r}): engine {r['mode']} {got}, "
                          f"training mask {'sparse' if sparse else 'dense'} {ranges}")
                    return 1
                checked += 1
    print(f"{len(records)} records, {checked} positions: training masks equal the engine's trace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
