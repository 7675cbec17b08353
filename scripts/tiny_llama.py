"""A minimal LLaMA in PyTorch with the Hugging Face LlamaForCausalLM math (RMSNorm,
rotate_half RoPE, SwiGLU, untied head) and parameter names, so its state dict exports
straight to the HF layout the engine loads. Attention takes an explicit additive mask
(0 = attend, -inf = not; how the span rule is applied in training) or None for the
ordinary causal mask."""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TinyConfig:
    vocab_size: int = 300
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    bos_token_id: int = 1
    eos_token_id: int = 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))  # [dim]
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(cfg: TinyConfig, positions, device):
    """positions: [T] -> cos, sin: [T, head_dim] (HF layout: frequencies repeated twice)."""
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, device=device).float() / cfg.head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [T, head_dim/2]
    emb = torch.cat((freqs, freqs), dim=-1)                 # [T, head_dim]
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.num_attention_heads * hd, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask):
        """x: [B, T, H]; cos, sin: [T, hd]; mask: [B, 1, T, T] additive float or None (causal)."""
        b, t, _ = x.shape
        hd = self.cfg.head_dim
        q = self.q_proj(x).view(b, t, -1, hd).transpose(1, 2)  # [B, nh, T, hd]
        k = self.k_proj(x).view(b, t, -1, hd).transpose(1, 2)  # [B, nkv, T, hd]
        v = self.v_proj(x).view(b, t, -1, hd).transpose(1, 2)  # [B, nkv, T, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.cfg.num_attention_heads // self.cfg.num_key_value_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        o = masked_attention(q, k, v, mask)  # [B, nh, T, hd]
        return self.o_proj(o.transpose(1, 2).reshape(b, t, -1))


# Query rows per attention call under an explicit mask. Row block [q0, q1) needs keys
# [0, q1) only (every mask here is causal at heart), so cutting the rows into blocks skips
# the upper triangle, which SDPA cannot do for an arbitrary mask: ~1.5x faster at T ~ 800.
QUERY_BLOCK = 128


def masked_attention(q, k, v, mask):
    """q: [B, nh, T, hd]; k, v: [B, nh, T, hd]; mask: [B, 1, T, T] additive or None
    (causal) -> [B, nh, T, hd]. Rows of a mask must not be all -inf (no NaN)."""
    t = q.shape[2]
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if t <= QUERY_BLOCK:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    outs = []
    for q0 in range(0, t, QUERY_BLOCK):
        q1 = min(t, q0 + QUERY_BLOCK)
        outs.append(F.scaled_dot_product_attention(q[:, :, q0:q1], k[:, :, :q1], v[:, :, :q1],
                                                   attn_mask=mask[:, :, q0:q1, :q1]))
    return torch.cat(outs, dim=2)


class MLP(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class TinyLlama(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, mask):
        """ids: [B, T] int64; mask: [B, 1, T, T] additive float or None (causal) -> logits [B, T, V]."""
        pos = torch.arange(ids.shape[1], device=ids.device)
        cos, sin = rope_cos_sin(self.cfg, pos, ids.device)
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.model.norm(x))


def export_hf(model: TinyLlama, tokenizer_model: str, out_dir: str) -> None:
    """Write model.safetensors (fp16), config.json, generation_config.json and
    tokenizer.model into out_dir (replaced atomically via a temporary directory)."""
    from safetensors.torch import save_file  # noqa: PLC0415

    cfg = model.cfg
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    hf = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "torch_dtype": "float16",
    }
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    gen = {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id, "do_sample": False,
           "max_new_tokens": cfg.max_position_embeddings}
    with open(os.path.join(tmp, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    shutil.copyfile(tokenizer_model, os.path.join(tmp, "tokenizer.model"))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def config_dict(cfg: TinyConfig) -> dict:
    return asdict(cfg)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def warmup_cosine_lr(step: int, progress: float, peak: float, warmup: int, floor_frac: float = 0.1) -> float:
    """Linear warmup over `warmup` steps, then cosine from peak to floor_frac * peak as
    progress (in [0, 1]: of the steps or of the wall-time budget) runs out."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, max(0.0, progress))
    return peak * (floor_frac + (1 - floor_frac) * 0.5 * (1 + math.cos(math.pi * p)))
