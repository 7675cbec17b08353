#!/usr/bin/env python3
"""The training masks equal the engine's --span-trace for the same text.

For generated arith records (short bushy expressions, long chains in both layouts), the engine scores
BOS + prompt + completion with `sspan-generate --score --span arith --span-trace`, and
every position's mode and attended ranges must equal:
1. scripts/span_rule.py's attended_ranges over the trace's token texts;
2. the segments the trainer stores (scripts/span_segments.py), expanded back to rows;
3. when torch, numpy and sentencepiece are importable: the mask rows that
   scripts/train_data.py's make_batch builds for the same records, tokenized by the
   trainer itself (skipped with a note otherwise; CI has no torch).

usage: mask_trace_test.py SSPAN_GENERATE SSPAN_DATAGEN MODEL_DIR [COUNT]
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from span_rule import attended_ranges  # noqa: E402
from span_segments import row_segments, segment_ranges  # noqa: E402

# (count share, datagen options): the tiny model's range, the long-chain distribution, and
# long chains in the lines layout (one anchored prompt line per operation)
CHAIN = ["--literals", "1,9", "--op-weights", "2,2,1,0", "--side-depth-max", "0", "--deep-left", "1"]
SETS = [(1.0, ["--seed", "7", "--depth-mean", "2", "--depth-sd", "1", "--digits-mean", "2", "--digits-sd", "1"]),
        (0.25, ["--seed", "8", "--depth-mean", "20", "--depth-sd", "10", "--results", "0,999"] + CHAIN),
        (0.25, ["--seed", "9", "--layout", "lines", "--depth-mean", "20", "--depth-sd", "10", "--results", "0,99"]
         + CHAIN)]


def piece_text(piece: str) -> str:
    """The text a SentencePiece piece stands for (as Tokenizer::token_bytes gives it)."""
    if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
        return bytes([int(piece[3:5], 16)]).decode("utf-8", errors="replace")
    if piece in ("<s>", "</s>", "<unk>"):
        return ""
    return piece.replace("\u2581", " ")


def trainer_rows(model, records_file):
    """Rows of the masks train_data.make_batch builds, or None without torch."""
    try:
        from train_data import mask_rows, prepare  # noqa: PLC0415
    except ImportError as e:
        print(f"note: trainer masks not checked ({e})")
        return None
    data = prepare(records_file, os.path.join(model, "tokenizer.model"), "span", log=lambda m: None)
    return [mask_rows(data, i) for i in range(len(data))]


def main() -> int:
    generate, datagen, model = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    with open(os.path.join(model, "config.json")) as f:
        context = json.load(f)["max_position_embeddings"]
    # completions up to half the model's context leave room for the prompt
    fit = ["--tokenizer", os.path.join(model, "tokenizer.model"), "--max-tokens", str(context // 2)]
    records = []
    for share, opts in SETS:
        records += subprocess.run([datagen, "arith", "--count", str(max(1, int(count * share)))] + opts + fit,
                                  check=True, capture_output=True, text=True).stdout.splitlines()
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        records_file = os.path.join(tmp, "records.jsonl")
        with open(records_file, "w") as f:
            f.write("\n".join(records) + "\n")
        built = trainer_rows(model, records_file)
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
            from_segments = segment_ranges(row_segments(want), len(want))
            # --score traces the inputs that predict completion tokens; the trainer also
            # reads the last completion token, whose target is EOS
            if built is not None and len(built[n]) != len(rows) + 1:
                print(f"record {n}: the trainer has {len(built[n])} input rows, the engine's trace {len(rows)} "
                      "(expected one more: the last completion token predicting EOS)")
                return 1
            for r, (sparse, ranges) in zip(rows, want):
                got = [tuple(a) for a in r["attended"]]
                t = r["pos"]
                seg = [tuple(a) for a in from_segments[t]]
                if (r["mode"] == "sparse") != sparse or got != [tuple(a) for a in ranges] or seg != got:
                    print(f"record {n} position {t} ({r['piece']!r}): engine {r['mode']} {got}, "
                          f"training mask {'sparse' if sparse else 'dense'} {ranges}, segments {seg}")
                    return 1
                if built is not None and [tuple(a) for a in built[n][t]] != got:
                    print(f"record {n} position {t} ({r['piece']!r}): engine {got}, make_batch {built[n][t]}")
                    return 1
                checked += 1
    what = "span rule, segments and make_batch masks" if built is not None else "span rule and segment masks"
    print(f"{len(records)} records, {checked} positions: {what} equal the engine's trace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
