"""Transformer parts shared by the talker and the code predictor.

Module and parameter names mirror the official checkpoint so `load_state_dict` takes its
tensors unchanged. Attention writes into a preallocated KV cache at positions given as a
device tensor and attends over a span of the cache chosen by the caller: within one span
every step has the same shapes, which is what CUDA-graph capture needs later.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin


class RMSNorm(nn.Module):
    """RMS norm computed in float32 and cast back, as the checkpoint was trained."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class Rotary(nn.Module):
    """Rotary tables; with `mrope_section` set it is the talker's multimodal (3-stream) rope.

    The talker's rope takes three position streams (time/height/width). Interleaved, the
    half-dimension index j takes stream s when j % 3 == s and j < 3 * section[s] (s = 1, 2),
    else stream 0. Text-only prompts give all three streams the same positions, so the
    result equals plain rope; the general form is kept so the layout is documented and tested.
    """

    def __init__(self, head_dim: int, theta: float, mrope_section: tuple[int, ...] = (),
                 interleaved: bool = False) -> None:
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        self.mrope_section, self.interleaved = tuple(mrope_section), interleaved
        self.reset(None)

    def reset(self, device: torch.device | str | None) -> None:
        """(Re)build the float32 tables on `device` (after loading onto a meta-built model)."""
        hd = self.head_dim
        inv = 1.0 / (self.theta ** (torch.arange(0, hd, 2, dtype=torch.int64, device=device).float() / hd))
        stream = torch.zeros(hd // 2, dtype=torch.long, device=device)
        sec = self.mrope_section
        if sec and self.interleaved:
            for s, n in enumerate(sec[1:], 1):
                stream[s : n * len(sec) : len(sec)] = s
        elif sec:
            start = 0
            for s, n in enumerate(sec):
                stream[start : start + n] = s
                start += n
        self.register_buffer("inv_freq", inv, persistent=False)
        self.register_buffer("stream", stream, persistent=False)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions: (T,) or (3, T) long. Returns cos, sin of shape (T, head_dim)."""
        if positions.dim() == 1:
            positions = positions.unsqueeze(0).expand(3, -1)
        freqs = positions.float().unsqueeze(-1) * self.inv_freq.float()  # (3, T, half)
        idx = self.stream.view(1, 1, -1).expand(1, freqs.shape[1], -1)
        freqs = freqs.gather(0, idx).squeeze(0)  # (T, half)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


class KVCache:
    """Preallocated keys/values for every layer: (layers, 1, kv_heads, capacity, head_dim)."""

    def __init__(self, layers: int, kv_heads: int, capacity: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        shape = (layers, 1, kv_heads, capacity, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.capacity = capacity
        self.steps: list[tuple[Rope, torch.Tensor]] = []  # per-step (rope, mask) for fixed positions
        self.positions: list[torch.Tensor] = []


def causal_mask(positions: torch.Tensor, span: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask (1, 1, T, span): query at position p sees cache slots 0..p."""
    keys = torch.arange(span, device=positions.device)
    allowed = keys.unsqueeze(0) <= positions.unsqueeze(1)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=positions.device)
    return mask.masked_fill(~allowed, float("-inf")).view(1, 1, *allowed.shape)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, eps: float) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)
        self.q_norm = RMSNorm(head_dim, eps)
        self.k_norm = RMSNorm(head_dim, eps)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], cache: KVCache,
                layer: int, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, t, self.heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(b, t, self.kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        cache.k[layer].index_copy_(2, positions, k)
        cache.v[layer].index_copy_(2, positions, v)
        span = mask.shape[-1]
        keys, values = cache.k[layer][:, :, :span], cache.v[layer][:, :, :span]
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask,
                                             enable_gqa=self.heads != self.kv_heads)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, hidden: int, intermediate: int, heads: int, kv_heads: int, head_dim: int,
                 eps: float) -> None:
        super().__init__()
        self.self_attn = Attention(hidden, heads, kv_heads, head_dim, eps)
        self.mlp = MLP(hidden, intermediate)
        self.input_layernorm = RMSNorm(hidden, eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], cache: KVCache,
                layer: int, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, cache, layer, positions, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


def decoder_layers(cfg: Any) -> nn.ModuleList:
    """The decoder stack of a talker or code-predictor config (same fields in both)."""
    return nn.ModuleList(
        DecoderLayer(cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                     cfg.rms_norm_eps)
        for _ in range(cfg.num_layers)
    )


def step_inputs(rotary: Rotary, positions: torch.Tensor, span: int, dtype: torch.dtype) -> tuple[Rope, torch.Tensor]:
    """Rope tables (1, 1, T, head_dim) and the causal mask for queries at `positions`."""
    cos, sin = rotary(positions, dtype)
    return (cos[None, None], sin[None, None]), causal_mask(positions, span, dtype)


def run_layers(layers: nn.ModuleList, norm: RMSNorm, x: torch.Tensor, cache: KVCache, positions: torch.Tensor,
               rope: Rope, mask: torch.Tensor) -> torch.Tensor:
    """Run a decoder stack over `x` (1, T, H) written at cache `positions`; returns normed hidden."""
    for i, layer in enumerate(layers):
        x = layer(x, rope, cache, i, positions, mask)
    return norm(x)
