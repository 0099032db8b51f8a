"""A lean KV-cached forward for Llama-family checkpoints, used by `HFPolicy.generate` instead of the model's own call.

The math is transformers' `LlamaForCausalLM` / `Qwen2ForCausalLM` forward (RMSNorm, rotary embeddings from the
model's own `rotary_emb`, grouped-query SDPA attention, SiLU-gated MLP, the model's `lm_head`), read from the model's
current parameters at every call, so a trainer's in-place updates are seen at once. What it drops is the per-call
machinery around that math (cache objects growing by concatenation, 4-D mask construction, output containers,
deprecation and capture wrappers), which on small models and CPUs is a large share of a decode step. Measured in
whole GRPO steps of a 4-layer, 128-wide model (`benchmarks/trl_grpo_step.py compare --steps 102`, with and without
`--no-fast-decode`; docs/trainers.md, "Measured"). Logits agree with `model(...)` to float rounding (tested).

`supports(model)` says whether a model qualifies: a plain (not LoRA-wrapped) Llama or Qwen2 causal LM with SiLU
MLPs, no sliding-window attention and no tensor-parallel slicing; anything else keeps the model's own forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

CLASSES = ("LlamaForCausalLM", "Qwen2ForCausalLM")


def supports(model: Any) -> bool:
    """True when `forward` below computes exactly what `model(...)` computes."""
    if type(model).__name__ not in CLASSES:
        return False
    cfg = model.config
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
        return False
    if getattr(cfg, "use_sliding_window", False):
        return False
    inner = getattr(model, "model", None)
    if inner is None or type(getattr(inner, "embed_tokens", None)) is not torch.nn.Embedding:
        return False
    if type(model.lm_head) is not torch.nn.Linear:
        return False
    for layer in inner.layers:
        a, m = layer.self_attn, layer.mlp
        mods = (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)
        if any(type(x) is not torch.nn.Linear for x in mods):  # e.g. peft's LoRA layers: keep their forward
            return False
    return True


class KVCache:
    """Per-layer K/V tensors of a fixed capacity: [batch, kv_heads, capacity, head_dim], filled left to right."""

    def __init__(self, model: Any, batch: int, capacity: int, device: Any, dtype: Any):
        cfg = model.config
        heads = cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        shape = (batch, kv_heads, capacity, self.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in model.model.layers]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in model.model.layers]
        self.length = 0  # columns filled

    def layer_kv(self, width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's (K, V) over the first `width` columns."""
        return [(k[:, :, :width], v[:, :, :width]) for k, v in zip(self.keys, self.values)]


def _rms(x: torch.Tensor, norm: Any) -> torch.Tensor:
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def forward(
    model: Any,
    ids: torch.Tensor,
    positions: torch.Tensor,
    attend: torch.Tensor,
    cache: KVCache,
    last_only: bool = False,
) -> torch.Tensor:
    """Feed `ids` [batch, s] at cache columns [cache.length, cache.length + s) and return logits.

    `positions` [batch, s]: rotary positions. `attend` [batch, s, cache.length + s] (bool): which columns each new
    token attends to (causality and padding are the caller's; a token always attends to itself, so padded rows
    stay finite). `last_only`: logits of the last position only."""
    inner = model.model
    n, s = ids.shape
    start = cache.length
    end = start + s
    x = F.embedding(ids, inner.embed_tokens.weight)
    cos, sin = inner.rotary_emb(x, positions)
    cos, sin = cos[:, None], sin[:, None]
    eye = torch.zeros_like(attend)
    eye[:, torch.arange(s, device=ids.device), torch.arange(start, end, device=ids.device)] = True
    mask = (attend | eye)[:, None]
    d = cache.head_dim
    for i, layer in enumerate(inner.layers):
        a, mlp = layer.self_attn, layer.mlp
        h = _rms(x, layer.input_layernorm)
        q = F.linear(h, a.q_proj.weight, a.q_proj.bias).view(n, s, -1, d).transpose(1, 2)
        k = F.linear(h, a.k_proj.weight, a.k_proj.bias).view(n, s, -1, d).transpose(1, 2)
        v = F.linear(h, a.v_proj.weight, a.v_proj.bias).view(n, s, -1, d).transpose(1, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        cache.keys[i][:, :, start:end] = k
        cache.values[i][:, :, start:end] = v
        keys, values = cache.keys[i][:, :, :end], cache.values[i][:, :, :end]
        o = F.scaled_dot_product_attention(
            q, keys, values, attn_mask=mask, scale=a.scaling, enable_gqa=q.shape[1] != keys.shape[1]
        )
        x = x + F.linear(o.transpose(1, 2).reshape(n, s, -1), a.o_proj.weight, a.o_proj.bias)
        h = _rms(x, layer.post_attention_layernorm)
        gate = F.linear(h, mlp.gate_proj.weight, mlp.gate_proj.bias)
        up = F.linear(h, mlp.up_proj.weight, mlp.up_proj.bias)
        x = x + F.linear(F.silu(gate) * up, mlp.down_proj.weight, mlp.down_proj.bias)
    cache.length = end
    if last_only:
        x = x[:, -1:]
    return model.lm_head(_rms(x, inner.norm))
