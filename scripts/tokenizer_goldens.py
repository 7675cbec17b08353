#!/usr/bin/env python3
"""Small tokenizers and their reference encodings, for tests/tokenizer/bpe_golden_test.cpp.

Trains three small BPE tokenizers with the Hugging Face `tokenizers` package on the
project's own documentation (deterministic), writes them to tests/data/tokenizers/, and
writes goldens: for each of a few hundred strings (whitespace runs, newlines, digits,
contractions, non-Latin scripts, emoji, special tokens) the ids the reference library
gives and its decode of them.

  byte_level_gpt2/tokenizer.json    ByteLevel pre-tokenizer (GPT-2 split), special tokens
  byte_level_llama3/tokenizer.json  Split(LLaMA 3 regex) + ByteLevel, ignore_merges, BOS
                                    added by the post-processor (as LLaMA 3)
  byte_level_llama3/tiktoken.model  the same vocabulary as a tiktoken rank file (LLaMA 3's
                                    tokenizer.model format); its goldens come from tiktoken
  spm_bpe/tokenizer.json            SentencePiece-style BPE: Prepend/Replace "▁"
                                    normalizers, byte fallback, <unk>, <s> added (LLaMA 2)

With --smollm2 DIR (a directory holding the tokenizer.json that scripts/fetch_smollm2.py
wrote), also writes smollm2_golden.json from that tokenizer (the tokenizer file itself is
not committed: the test reads it from the fetched model and skips when it is absent).

Needs: tokenizers, tiktoken (pip install tokenizers tiktoken).
"""
from __future__ import annotations

import argparse
import base64
import json
import random
from pathlib import Path

import tiktoken
import tokenizers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "tokenizers"

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                   "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
LLAMA3_SPECIALS += [f"<|reserved_special_token_{i}|>" for i in range(2, 2 + 256 - len(LLAMA3_SPECIALS))]

EXTRA_TRAINING = [
    "Grüße aus München! Ça va très bien, merci. ¿Dónde está la biblioteca?",
    "Привет, как дела? Это тест токенизатора.",
    "こんにちは、世界。東京は日本の首都です。",
    "你好，世界！今天天气很好。",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "안녕하세요 세계",
    "I'm sure they'd've done it; we'll see. You're right, it's John's.",
    "1234567890 3.14159 2,718 1e-9 0x1F 100%",
]


def corpus() -> list[str]:
    lines = []
    for p in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        lines += [l for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]
    return lines + EXTRA_TRAINING * 3


def test_strings() -> list[str]:
    base = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\n \n", "\r\n", "a\r\nb", "\t\tx", "x\t\t",
        "Hello world", " Hello world", "Hello  world", "Hello   world   ", "Hello\nworld", "Hello\n\nworld",
        "hello\n  world", "line one\n\n\n  line two\n", "trailing space ", "trailing spaces   ",
        "  leading spaces", "mixed \t tabs\t and  spaces",
        "1", "12", "123", "1234", "12345", "123456789", "3.14159", "1,000,000", "a1b2c3", "x = 42;",
        "2024-01-01", "99 bottles", "0.5x", "v1.2.3", "1e-9", "(42 * 56) + (5 * 32) [0]",
        "I'm", "you're", "we've", "they'll", "she'd", "it's", "I'M", "YOU'RE", "don't", "can't",
        "rock 'n' roll", "'s", "''", "'tis", "O'Neill's",
        "Grüße", "naïve café", "Ça va?", "¿Qué tal?", "straße", "Ελληνικά", "Привет, мир!", "Україна",
        "こんにちは世界", "東京タワー", "你好，世界", "안녕하세요", "مرحبا بالعالم", "שלום", "नमस्ते",
        "ภาษาไทย", "Tiếng Việt", "ﬁ ligature", "Ⅻ roman", "½ ¾ ²", "٣٤٥ arabic digits", "१२३",
        "😀", "👍🏽", "👨‍👩‍👧‍👦 family", "🇫🇷 flag", "emoji 🎉 party", "I ❤ NY", "✓ done ✗ not",
        "tab\tseparated\tvalues", "snake_case_name", "camelCaseName", "kebab-case-name", "CONSTANT_VALUE",
        "https://example.com/path?query=1&x=2", "user@example.com", "#include <vector>", "def f(x): return x**2",
        "if (a && b || !c) { return; }", "<html><body>hi</body></html>", "{\"key\": [1, 2, 3]}",
        "!!!", "???", "...", "--", "—", "–", "…", "«quoted»", "“smart quotes”", "a.b.c", "::", "->",
        "\u00a0nbsp", "zero\u200bwidth", "\u3000ideographic space", "a\u2028b", "combining e\u0301",
    ]
    specials = [
        "<|endoftext|>", "Hello<|endoftext|>world", "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
        "<|begin_of_text|>Hello", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<s>Hello</s>",
        "text <|im_end|> more", "<|im_start|><|im_end|>", "<|endoftext", "<|not_special|>",
    ]
    rng = random.Random(20261201)
    words = [w for s in base + EXTRA_TRAINING for w in s.split()] or ["x"]
    seps = [" ", "  ", "\n", "\t", "", " \n ", ", ", ". "]
    mixed = []
    for _ in range(180):
        n = rng.randint(1, 8)
        mixed.append("".join(rng.choice(words) + rng.choice(seps) for _ in range(n)))
    return base + specials + mixed


def train(tok: Tokenizer, vocab_size: int, specials: list[str], byte_level: bool) -> None:
    kw = dict(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    if byte_level:
        kw["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    else:
        kw["limit_alphabet"] = 120  # rare characters stay out: they take the byte fallback
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(**kw))


def gpt2_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    train(tok, 900, GPT2_SPECIALS, byte_level=True)
    return tok


def llama3_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    train(tok, 900, [], byte_level=True)
    # Specials after the ranks, as LLaMA 3 (their ids follow the BPE vocabulary).
    tok.add_special_tokens(LLAMA3_SPECIALS)
    bos = LLAMA3_SPECIALS[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    return tok


def spm_tokenizer() -> Tokenizer:
    """LLaMA 2's tokenizer.json layout: <unk> <s> </s>, the 256 byte tokens, then BPE."""
    tmp = Tokenizer(models.BPE(unk_token="<unk>"))
    tmp.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    train(tmp, 700, ["<unk>", "<s>", "</s>"], byte_level=False)
    trained = json.loads(tmp.to_str())
    old_vocab = trained["model"]["vocab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in sorted(old_vocab.items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    trained["model"].update(vocab=vocab, byte_fallback=True, fuse_unk=True, unk_token="<unk>")
    trained["added_tokens"] = [
        {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True} for t in ("<unk>", "<s>", "</s>")]
    trained["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    trained["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    return Tokenizer.from_str(json.dumps(trained))


def write_tokenizer(tok: Tokenizer, name: str, config: dict | None) -> Path:
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"), pretty=False)
    if config is not None:
        (d / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    return d


def goldens(tok: Tokenizer, strings: list[str]) -> list[dict]:
    out = []
    for s in strings:
        ids = tok.encode(s, add_special_tokens=False).ids
        out.append({"text": s, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True)})
    return out


def write_tiktoken(tok: Tokenizer, path: Path) -> tiktoken.Encoding:
    """The byte-level vocabulary as tiktoken ranks (ids below the first special token)."""
    # GPT-2's byte <-> unicode map, as the ByteLevel pre-tokenizer uses it.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_of = {chr(c): b for b, c in zip(bs, cs)}
    first_special = tok.token_to_id(LLAMA3_SPECIALS[0])
    vocab = tok.get_vocab()
    ranks = {}
    for t, i in vocab.items():
        if i < first_special:
            ranks[bytes(byte_of[c] for c in t)] = i
    assert sorted(ranks.values()) == list(range(first_special))
    with path.open("w") as f:
        for b, r in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(b).decode()} {r}\n")
    specials = {t: first_special + k for k, t in enumerate(LLAMA3_SPECIALS)}
    return tiktoken.Encoding("sspan-test", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def dump(doc: dict) -> str:
    """JSON with one case per line: small diffs when a golden changes."""
    def cases(cs):
        return "[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cs) + "\n]"
    head = {k: v for k, v in doc.items() if k != "cases"}
    body = doc["cases"]
    if isinstance(body, list):
        inner = cases(body)
    else:
        inner = "{\n" + ",\n".join(f"{json.dumps(k)}: {cases(v)}" for k, v in body.items()) + "\n}"
    return json.dumps(head)[:-1] + ', "cases": ' + inner + "}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smollm2", type=Path, help="directory with the fetched SmolLM2 tokenizer.json")
    args = ap.parse_args()
    strings = test_strings()
    doc = {"format": 1, "tokenizers_version": tokenizers.__version__, "tiktoken_version": tiktoken.__version__,
           "cases": {}}
    if args.smollm2:
        tok = Tokenizer.from_file(str(args.smollm2 / "tokenizer.json"))
        (OUT / "smollm2_golden.json").write_text(dump(
            {"format": 1, "tokenizers_version": tokenizers.__version__, "cases": goldens(tok, strings)}))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    gpt2 = gpt2_tokenizer()
    write_tokenizer(gpt2, "byte_level_gpt2", {"add_bos_token": False, "bos_token": None, "eos_token": "<|endoftext|>"})
    doc["cases"]["byte_level_gpt2"] = goldens(gpt2, strings)
    llama3 = llama3_tokenizer()
    d = write_tokenizer(llama3, "byte_level_llama3", None)
    doc["cases"]["byte_level_llama3"] = goldens(llama3, strings)
    enc = write_tiktoken(llama3, d / "tiktoken.model")
    doc["cases"]["tiktoken_llama3"] = [
        {"text": s, "ids": (ids := enc.encode(s, allowed_special="all")), "decoded": enc.decode(
            [i for i in ids if i < llama3.token_to_id(LLAMA3_SPECIALS[0])], errors="replace")} for s in strings]
    spm = spm_tokenizer()
    write_tokenizer(spm, "spm_bpe", {"add_bos_token": True, "bos_token": "<s>", "eos_token": "</s>"})
    doc["cases"]["spm_bpe"] = goldens(spm, strings)
    (OUT / "golden.json").write_text(dump(doc))
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
