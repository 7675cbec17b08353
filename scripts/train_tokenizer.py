#!/usr/bin/env python3
"""Train the SentencePiece tokenizer of the tiny arith model.

Input: JSONL records with "prompt" and "completion" (sspan-datagen arith output). Every
text line of every record is one training sentence.

Choices (docs/datasets.md, "Tokenizer"):
- identity normalization and no whitespace cleanup, so decode(encode(x)) == x byte for byte;
- no dummy prefix: a prompt encodes the same alone or as a continuation;
- split_digits: numbers are spelled digit by digit, as LLaMA does;
- byte_fallback: the newline (never inside a training sentence) becomes the single
  byte piece <0x0A>, exactly as in the LLaMA tokenizer; byte_fallback puts 256 byte
  pieces in the vocabulary, so the vocabulary is 256 + specials + alphabet + merges;
- unk=0, bos=1, eos=2, no pad (LLaMA's ids);
- --piece TEXT (repeatable) makes TEXT one user-defined piece, matched wherever it occurs,
  digits included (split_digits keeps BPE from ever merging a digit). The long-chain
  model uses `--piece "[0,"`, the opening of every step's reference list.
"""
import argparse
import json
import sys

import sentencepiece as spm


def sentences(path):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                text = rec["prompt"] + rec["completion"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                sys.exit(f"{path} line {n}: not an arith record ({e})")
            for s in text.split("\n"):
                if s:
                    yield s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="arith JSONL")
    ap.add_argument("--output", required=True, help="output prefix; writes PREFIX.model and PREFIX.vocab")
    ap.add_argument("--vocab-size", type=int, default=300)
    ap.add_argument("--max-sentences", type=int, default=200000)
    ap.add_argument("--piece", action="append", default=[],
                    help="a user-defined piece (repeatable), e.g. '[0,'")
    args = ap.parse_args()
    spm.SentencePieceTrainer.train(
        sentence_iterator=sentences(args.input),
        model_prefix=args.output,
        model_type="bpe",
        vocab_size=args.vocab_size,
        input_sentence_size=args.max_sentences,
        shuffle_input_sentence=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        split_digits=True,
        byte_fallback=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1,
        minloglevel=2,
        user_defined_symbols=args.piece,
    )
    sp = spm.SentencePieceProcessor(model_file=args.output + ".model")
    sample = "(42 * 56) + (5 * 32) [0]\n[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352"
    ids = sp.encode(sample)
    assert sp.decode(ids) == sample, "tokenizer does not round-trip the sample"
    for piece in args.piece:
        assert sp.encode(piece) == [sp.piece_to_id(piece)], f"'{piece}' is not one piece"
    print(f"vocab {sp.get_piece_size()}; sample -> {len(ids)} tokens: "
          + " ".join(sp.id_to_piece(i) for i in ids))


if __name__ == "__main__":
    main()
