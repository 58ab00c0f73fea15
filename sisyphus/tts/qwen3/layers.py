"""Transformer parts shared by the talker and the code predictor.

Module and parameter names mirror the official checkpoint so `load_state_dict` takes its
tensors unchanged. Attention writes into a preallocated KV cache at positions given as a
device tensor and attends over a span of the cache chosen by the caller: within one span
every step has the same shapes, which is what CUDA-graph capture needs later.

A frame step runs about a hundred decoder layers on one token each, so on a GPU it is
bound by the number of kernels, not by the weights it reads. Hence the fusions, each equal
to the reference's arithmetic in float32: q/k/v and gate/up are one matrix each (the
checkpoint's separate matrices, concatenated when loaded and split again in
`state_dict()`, so the official names load and save), q_norm and k_norm normalise in one
call, one rope call rotates q and k together with the half-swap done as one flip against
a sign-folded sine table, and attention groups the query heads of each KV head into one
batched matmul instead of SDPA's grouped-query path (which on CUDA, with a mask, is the
math fallback: copies of K and V per query head and half a dozen kernels).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin (as `rotate` takes them: see step_inputs)


class RMSNorm(nn.Module):
    """RMS norm computed in float32 and cast back, as the checkpoint was trained."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)  # weight after the norm, as below
        return self.weight * _normalized(x, self.weight.shape[-1], self.eps)


def _normalized(x: torch.Tensor, size: int, eps: float) -> torch.Tensor:
    """x / rms(x) over the last `size` values, computed in float32 and cast back to x's dtype
    (F.rms_norm is one fused kernel on CUDA in recent torch; the same ops on a CPU)."""
    return F.rms_norm(x.float(), (size,), eps=eps).to(x.dtype)


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


def signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """sin with its first half negated: rotate_half(x) * sin == swap_halves(x) * signed_sin."""
    a, b = sin.chunk(2, dim=-1)
    return torch.cat((-a, b), dim=-1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """apply_rotary in three kernels: the half swap is one flip, the sign lives in the table."""
    half = x.shape[-1] // 2
    swapped = x.unflatten(-1, (2, half)).flip(-2).flatten(-2)
    return torch.addcmul(x * cos, swapped, sin_signed)


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
    """Additive mask (T, span): query at position p sees cache slots 0..p."""
    keys = torch.arange(span, device=positions.device)
    allowed = keys.unsqueeze(0) <= positions.unsqueeze(1)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=positions.device)
    return mask.masked_fill(~allowed, float("-inf"))


class FusedLinear(nn.Linear):
    """Several of the checkpoint's bias-free linears over one input, as one row-stacked matrix.

    The module that owns it loads and saves the parts under their own names (`fuse_names`),
    so the weight exists once: a real parameter the weight arena can repoint.
    """

    def __init__(self, in_features: int, parts: dict[str, int]) -> None:
        super().__init__(in_features, sum(parts.values()), bias=False)
        self.parts = dict(parts)


def fuse_names(owner: nn.Module, fused: str) -> None:
    """Map `owner.<fused>.weight` to the checkpoint's `owner.<part>.weight`s and back."""
    parts: dict[str, int] = getattr(owner, fused).parts

    def load(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *_: Any) -> None:
        names = [f"{prefix}{part}.weight" for part in parts]
        if all(name in state_dict for name in names):  # else load_state_dict names what is missing
            state_dict[f"{prefix}{fused}.weight"] = torch.cat([state_dict.pop(name) for name in names])

    def save(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, _meta: Any) -> None:
        key = f"{prefix}{fused}.weight"
        if key not in state_dict:
            return
        # This module's entries are the newest; re-adding them in order keeps the official order.
        for name, value in [(k, state_dict.pop(k)) for k in [k for k in state_dict if k.startswith(prefix)]]:
            if name != key:
                state_dict[name] = value
                continue
            for part, piece in zip(parts, value.split(list(parts.values())), strict=True):
                state_dict[f"{prefix}{part}.weight"] = piece

    owner.register_load_state_dict_pre_hook(load)
    owner._register_state_dict_hook(save)  # public only from torch 2.3 as register_state_dict_post_hook


class Attention(nn.Module):
    """q/k/v as one matmul; q and k normalised and rotated together; grouped attention."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, eps: float) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.scale = head_dim**-0.5
        self.qkv_proj = FusedLinear(hidden, {"q_proj": heads * head_dim, "k_proj": kv_heads * head_dim,
                                             "v_proj": kv_heads * head_dim})
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)
        self.q_norm = RMSNorm(head_dim, eps)
        self.k_norm = RMSNorm(head_dim, eps)
        fuse_names(self, "qkv_proj")

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], cache: KVCache,
                layer: int, positions: torch.Tensor, mask: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """residual + attention(x): the residual add rides on the output projection's matmul."""
        b, t, _ = x.shape
        h, kv, d = self.heads, self.kv_heads, self.head_dim
        qkv = self.qkv_proj(x).view(b, t, h + 2 * kv, d)
        qk = _normalized(qkv[:, :, : h + kv], d, self.q_norm.eps)  # q_norm and k_norm share eps
        qk[:, :, :h].mul_(self.q_norm.weight)
        qk[:, :, h:].mul_(self.k_norm.weight)
        qk = rotate(qk, *rope)
        cache.k[layer].index_copy_(2, positions, qk[:, :, h:].transpose(1, 2))
        cache.v[layer].index_copy_(2, positions, qkv[:, :, h + kv :].transpose(1, 2))
        span = mask.shape[-1]
        keys, values = cache.k[layer][0, :, :span], cache.v[layer][0, :, :span]
        out = grouped_attention(qk[0, :, :h], keys, values, mask, self.scale)
        return linear_add(residual, out, self.o_proj.weight)


def grouped_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                      scale: float) -> torch.Tensor:
    """Softmax attention of q (T, heads, D) over keys/values (kv_heads, S, D); returns (T, heads * D).

    Query head i uses KV head i // groups (as SDPA's enable_gqa), so each KV head's query
    heads and tokens form the rows of one batched matmul: no copy of K or V per head.
    `mask` is (1, groups * T, S), rows ordered group-major (`step_inputs` makes it once
    per step). The softmax runs in float32, as the reference's eager attention does.
    """
    t, h, d = q.shape
    kv = keys.shape[0]
    g = h // kv
    rows = q.reshape(t, kv, g, d).permute(1, 2, 0, 3).reshape(kv, g * t, d)  # a view when T == 1
    scores = torch.baddbmm(mask, rows, keys.transpose(1, 2), alpha=scale)
    probs = scores.softmax(-1, dtype=torch.float32).to(values.dtype)
    out = torch.bmm(probs, values)
    return out.view(kv, g, t, d).permute(2, 0, 1, 3).reshape(t, h * d)


class MLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.gate_up_proj = FusedLinear(hidden, {"gate_proj": intermediate, "up_proj": intermediate})
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)
        fuse_names(self, "gate_up_proj")

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """mlp(x), or residual + mlp(x) with the add riding on the down projection's matmul."""
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        act = F.silu(gate) * up
        return self.down_proj(act) if residual is None else linear_add(residual, act, self.down_proj.weight)


def linear_add(residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """residual + x @ weight.T as one addmm (one kernel instead of a matmul and an add)."""
    flat = torch.addmm(residual.reshape(-1, residual.shape[-1]), x.reshape(-1, x.shape[-1]), weight.t())
    return flat.view(residual.shape)


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
        x = self.self_attn(self.input_layernorm(x), rope, cache, layer, positions, mask, residual=x)
        return self.mlp(self.post_attention_layernorm(x), residual=x)


def decoder_layers(cfg: Any) -> nn.ModuleList:
    """The decoder stack of a talker or code-predictor config (same fields in both)."""
    return nn.ModuleList(
        DecoderLayer(cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                     cfg.rms_norm_eps)
        for _ in range(cfg.num_layers)
    )


def step_inputs(rotary: Rotary, positions: torch.Tensor, span: int, dtype: torch.dtype,
                groups: int) -> tuple[Rope, torch.Tensor]:
    """What every layer of one step shares, built once per step: rope tables (1, T, 1,
    head_dim) as `rotate` takes them, and the causal mask for queries at `positions` laid
    out for `grouped_attention` with `groups` query heads per KV head."""
    cos, sin = rotary(positions, dtype)
    rope = (cos[None, :, None], signed_sin(sin)[None, :, None])
    return rope, causal_mask(positions, span, dtype).repeat(groups, 1).unsqueeze(0)


def run_layers(layers: nn.ModuleList, norm: RMSNorm, x: torch.Tensor, cache: KVCache, positions: torch.Tensor,
               rope: Rope, mask: torch.Tensor) -> torch.Tensor:
    """Run a decoder stack over `x` (1, T, H) written at cache `positions`; returns normed hidden."""
    for i, layer in enumerate(layers):
        x = layer(x, rope, cache, i, positions, mask)
    return norm(x)
