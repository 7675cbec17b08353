#!/usr/bin/env python3
"""Hugging Face transformers reference outputs for sspan.

Two modes.

1. Goldens (no arguments, or --out DIR): build tiny random LlamaForCausalLM checkpoints
   with fixed seeds and write, for each variant, into tests/data/hf/<variant>/:
     config.json, model.safetensors   the checkpoint (float32)
     golden.json                      what transformers computes on it

   golden.json (format 1), plain JSON:
     "format": 1
     "variant": "<name>"
     "transformers_version", "torch_version": the versions that produced it
     "eos_token_id": the config's EOS id, chosen so that no greedy continuation below
                     contains it: an engine that stops at EOS still yields all tokens
     "prompts":   [P][len_p] token ids, BOS (1) first; lengths 1, 7 and 40
     "logits_positions": [P][len_p] the positions whose logits are stored: every
                     position of the prompt (0 .. len_p - 1), named explicitly
     "logits":    [P][len_p][vocab] fp32 logits of the full-prompt forward (one call,
                     no cache); row i is the distribution of the token after position i
     "new_tokens": 16
     "greedy":    [P][16] greedy continuation, fp32 model.generate(do_sample=False,
                     use_cache=True), EOS never stops it
     "margins":   [P][16] top-1 minus top-2 raw logit at each greedy step (fp32)
     "greedy64", "margins64": the same from the model cast to float64, an independent
                     reference: a step whose margin is below an engine's error bound may
                     legitimately differ, elsewhere the tokens must agree
   Floats are written with 9 significant digits (exact float32 round trip).
   Suggested comparison: every logit within 1e-4 * max(1, max |golden row|) of golden;
   greedy tokens equal to "greedy" up to the first step whose margin is below 1e-3.

   config.json is written in the layout of LLaMA checkpoints on the Hub (rope_theta and
   rope_scaling at top level, torch_dtype), which transformers still reads; the variant
   "v5_config" keeps the layout transformers >= 5 writes itself (rope_parameters, dtype),
   which is what a checkpoint saved by scripts/merge_lora.py looks like.

2. --check MODEL_DIR: for any LLaMA-shaped Hugging Face checkpoint directory, run
   transformers in float64 (or --dtype) on a prompt and print the greedy continuation
   with its top-2 margins as JSON, to compare with `sspan-generate --temp 0 --json`.
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

GOLDEN_FORMAT = 1
NEW_TOKENS = 16
PROMPT_LENGTHS = (1, 7, 40)
BOS_ID = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "data" / "hf"


@dataclass
class Variant:
    name: str
    seed: int
    num_kv_heads: int = 4
    tie_word_embeddings: bool = False
    rope_scaling: dict | None = None
    hidden_size: int = 64
    intermediate_size: int = 160
    num_layers: int = 2
    native_v5_config: bool = False  # keep config.json exactly as transformers writes it


VARIANTS = [
    Variant("mha_tied", seed=11, num_kv_heads=4, tie_word_embeddings=True),
    Variant("mha_untied", seed=12, num_kv_heads=4),
    Variant("gqa_tied", seed=13, num_kv_heads=2, tie_word_embeddings=True),
    Variant("gqa_untied", seed=14, num_kv_heads=1),
    # original_max_position_embeddings 64 puts the 8 RoPE frequencies of head_dim 16 in
    # all three llama3 regimes (kept, smoothed, divided by factor).
    Variant("rope_llama3", seed=15, num_kv_heads=2,
            rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    Variant("rope_linear", seed=16, num_kv_heads=4,
            rope_scaling={"rope_type": "linear", "factor": 2.0}),
    Variant("v5_config", seed=17, num_kv_heads=2, hidden_size=32, intermediate_size=96,
            num_layers=1, native_v5_config=True,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
]


def build_model(v: Variant) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=128, hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
        num_hidden_layers=v.num_layers, num_attention_heads=4, num_key_value_heads=v.num_kv_heads,
        max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=v.tie_word_embeddings, rope_scaling=v.rope_scaling,
        bos_token_id=BOS_ID, eos_token_id=2, attn_implementation="eager")
    torch.manual_seed(v.seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    # HF's default init (std 0.02) gives near-flat logits; a larger std gives greedy
    # tokens with clear margins, so a test can demand exact agreement.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + (torch.rand_like(p) * 0.2 - 0.1))
            else:
                p.normal_(0.0, 0.08)
    return model


def make_prompts(seed: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    # ids 3.. avoid BOS/EOS/UNK-like ids inside prompts
    return [[BOS_ID] + torch.randint(3, vocab, (n - 1,), generator=g).tolist() for n in PROMPT_LENGTHS]


def top2_margin(logits: torch.Tensor) -> float:
    top = torch.topk(logits.double(), 2).values  # [2]
    return float(top[0] - top[1])


def greedy(model: LlamaForCausalLM, prompt: list[int], new_tokens: int,
           stop_at_eos: bool = False) -> tuple[list[int], list[float]]:
    """Greedy continuation with model.generate and the raw-logit top-2 margin per step."""
    ids = torch.tensor([prompt])  # [1, len]
    gen = model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, use_cache=True,
        max_new_tokens=new_tokens, output_logits=True, return_dict_in_generate=True,
        eos_token_id=model.config.eos_token_id if stop_at_eos else None,
        pad_token_id=0, temperature=None, top_p=None, top_k=None)
    tokens = gen.sequences[0, len(prompt):].tolist()
    margins = [top2_margin(step[0]) for step in gen.logits]  # each step: [1, vocab]
    return tokens, margins


def fmt_floats(values) -> list[float]:
    # 9 significant digits round-trip float32 exactly.
    return [float(f"{float(x):.9g}") for x in values]


def classic_config(config_dict: dict, dtype_name: str) -> dict:
    """transformers >= 5 writes rope_parameters; Hub LLaMA checkpoints carry rope_theta and
    rope_scaling at top level (and torch_dtype). Rewrite into the Hub layout."""
    out = dict(config_dict)
    rope = dict(out.pop("rope_parameters", None) or {})
    out["rope_theta"] = rope.pop("rope_theta", 10000.0)
    rope_type = rope.get("rope_type", "default")
    out["rope_scaling"] = None if rope_type == "default" else rope
    out.pop("dtype", None)
    out["torch_dtype"] = dtype_name
    return out


def write_variant(v: Variant, out_root: Path) -> dict:
    model = build_model(v)
    vocab = model.config.vocab_size
    prompts = make_prompts(1000 + v.seed, vocab)

    logits_all, greedy32, margins32 = [], [], []
    with torch.no_grad():
        for p in prompts:
            out = model(torch.tensor([p]), use_cache=False)
            logits_all.append([fmt_floats(row) for row in out.logits[0]])  # [len, vocab]
            toks, margins = greedy(model, p, NEW_TOKENS)
            greedy32.append(toks)
            margins32.append(fmt_floats(margins))
        model64 = copy.deepcopy(model).to(torch.float64)
        greedy64, margins64 = [], []
        for p in prompts:
            toks, margins = greedy(model64, p, NEW_TOKENS)
            greedy64.append(toks)
            margins64.append(fmt_floats(margins))

    produced = {t for seq in greedy32 + greedy64 for t in seq}
    eos = next(i for i in [2] + list(range(3, vocab)) if i not in produced)
    model.config.eos_token_id = eos
    model.generation_config.eos_token_id = eos

    d = out_root / v.name
    if d.exists():
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    # The generation config is transformers' own; the engine reads config.json only.
    (d / "generation_config.json").unlink(missing_ok=True)
    if not v.native_v5_config:
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps(classic_config(cfg, "float32"), indent=2, sort_keys=True) + "\n")

    # The written checkpoint must reload to the same logits (checks the config rewrite).
    reloaded = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        for p, ref in zip(prompts, logits_all):
            got = reloaded(torch.tensor([p]), use_cache=False).logits[0]
            diff = (got - torch.tensor(ref)).abs().max().item()
            if diff > 1e-5:
                raise RuntimeError(f"{v.name}: reloaded checkpoint differs from the built one by {diff}")

    golden = {
        "format": GOLDEN_FORMAT,
        "variant": v.name,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "eos_token_id": eos,
        "prompts": prompts,
        "logits_positions": [list(range(len(p))) for p in prompts],
        "logits": logits_all,
        "new_tokens": NEW_TOKENS,
        "greedy": greedy32,
        "margins": margins32,
        "greedy64": greedy64,
        "margins64": margins64,
    }
    (d / "golden.json").write_text(json.dumps(golden, separators=(",", ":")) + "\n")
    agree = sum(a == b for s32, s64 in zip(greedy32, greedy64) for a, b in zip(s32, s64))
    min_margin = min(m for ms in margins32 for m in ms)
    sizes = {f.name: f.stat().st_size for f in sorted(d.iterdir())}
    return {"variant": v.name, "fp32_vs_fp64_greedy_agree": f"{agree}/{len(prompts) * NEW_TOKENS}",
            "min_margin": round(min_margin, 4), "eos_token_id": eos, "bytes": sizes}


# ---------------------------------------------------------------- --check mode

def encode_prompt(model_dir: Path, args) -> list[int]:
    if args.prompt_ids:
        try:
            return [int(x) for x in args.prompt_ids.split(",") if x.strip()]
        except ValueError:
            sys.exit(f"--prompt-ids: expected comma-separated integers, got '{args.prompt_ids}'")
    tok_file = Path(args.tokenizer) if args.tokenizer else model_dir / "tokenizer.model"
    if not tok_file.is_file():
        sys.exit(f"no tokenizer at {tok_file}: pass --tokenizer FILE or --prompt-ids")
    import sentencepiece as spm  # noqa: PLC0415
    sp = spm.SentencePieceProcessor(model_file=str(tok_file))
    return [sp.bos_id()] + sp.encode(args.prompt)


def run_check(args) -> None:
    model_dir = Path(args.check)
    if not (model_dir / "config.json").is_file():
        sys.exit(f"{model_dir}: no config.json (expected a Hugging Face checkpoint directory)")
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    prompt = encode_prompt(model_dir, args)
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="eager").eval()
    with torch.no_grad():
        tokens, margins = greedy(model, prompt, args.new_tokens, stop_at_eos=not args.ignore_eos)
    result = {
        "model_dir": str(model_dir),
        "dtype": args.dtype,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "prompt_ids": prompt,
        "tokens": tokens,
        "margins": [round(m, 6) for m in margins],
    }
    tok_file = Path(args.tokenizer) if args.tokenizer else model_dir / "tokenizer.model"
    if tok_file.is_file():
        import sentencepiece as spm  # noqa: PLC0415
        result["text"] = spm.SentencePieceProcessor(model_file=str(tok_file)).decode(tokens)
    text = json.dumps(result, indent=2)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""goldens:
  hf_reference.py                     rewrite tests/data/hf/<variant>/ (see the file's header)
check an engine against transformers on any LLaMA checkpoint:
  hf_reference.py --check MODEL_DIR --prompt "(42 * 56) + (5 * 32) [0]" --new-tokens 32
  sspan-generate (same model and prompt) --temp 0 --json
Prints {prompt_ids, tokens, margins, text}: the float64 greedy continuation (stopping at
EOS unless --ignore-eos) and, per step, the top-1 minus top-2 logit. The engine's tokens
should equal `tokens` up to the first step with a margin below its error bound (about
1e-2 for fp16 weights, 1e-4 for fp32). float64 needs 8 bytes per parameter of memory
(54 GB for a 7B model); --dtype float32 halves that.""")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="goldens root (default tests/data/hf)")
    ap.add_argument("--check", metavar="MODEL_DIR", help="reference greedy run on a checkpoint directory")
    ap.add_argument("--prompt", default="1 + 2 =", help="--check: prompt text (tokenized with tokenizer.model, BOS first)")
    ap.add_argument("--prompt-ids", help="--check: comma-separated token ids used as is (include BOS)")
    ap.add_argument("--tokenizer", help="--check: tokenizer.model (default MODEL_DIR/tokenizer.model)")
    ap.add_argument("--new-tokens", type=int, default=32, help="--check: tokens to generate (default 32)")
    ap.add_argument("--ignore-eos", action="store_true", help="--check: do not stop at EOS")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="--check: compute dtype")
    ap.add_argument("--json-out", help="--check: also write the JSON to this file")
    args = ap.parse_args()

    torch.set_num_threads(1)
    if args.check:
        run_check(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for v in VARIANTS:
        print(json.dumps(write_variant(v, args.out)))


if __name__ == "__main__":
    main()
