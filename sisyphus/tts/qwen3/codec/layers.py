"""Building blocks of the 12 Hz codec, each usable whole-sequence or incrementally.

Every stateful block takes an optional `cache` (a dict the caller owns, keyed by module).
Without it a block pads with zeros like the official model; with it the block keeps the
left context it needs between calls, so feeding frames in pieces gives the same numbers as
feeding them at once. One code path serves both, which is what keeps streaming exact.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

# The talker and the codec transformer share these building blocks.
from sisyphus.tts.qwen3.layers import MLP as GatedMlp  # noqa: F401 (used by decoder)
from sisyphus.tts.qwen3.layers import RMSNorm as RMSNorm, apply_rotary

StreamCache = dict[Any, Any]


class CausalConv1d(nn.Module):
    """Conv1d padded on the left only (plus right padding to a whole number of strides)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        pad_mode: str = "constant",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, dilation=dilation,
            groups=groups, bias=bias,
        )
        self.stride = stride
        self.left_pad = (kernel_size - 1) * dilation + 1 - stride
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        if cache is None:
            length = x.shape[-1]
            right_pad = math.ceil(length / self.stride) * self.stride - length
            return self.conv(F.pad(x, (self.left_pad, right_pad), mode=self.pad_mode))
        if self.stride != 1 or self.pad_mode != "constant":
            raise ValueError("incremental use needs a stride-1, zero-padded conv")
        history = cache.get(self)
        if history is None:
            history = x.new_zeros(x.shape[0], x.shape[1], self.left_pad)
        x = torch.cat([history, x], dim=-1)
        cache[self] = x[..., x.shape[-1] - self.left_pad :]
        return self.conv(x)


class CausalConvTranspose1d(nn.Module):
    """ConvTranspose1d whose overhang past the last input frame is cut off (causal)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride)
        self.stride = stride
        self.right_trim = kernel_size - stride
        # Input frames of history whose output still overlaps the next frame's.
        self.history = math.ceil(self.right_trim / stride)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        new_frames = x.shape[-1]
        if cache is None:
            y = self._transpose(x)
            return y[..., : y.shape[-1] - self.right_trim]
        history = cache.get(self)
        if history is None:
            history = x.new_zeros(x.shape[0], x.shape[1], self.history)
        x = torch.cat([history, x], dim=-1)
        cache[self] = x[..., x.shape[-1] - self.history :]
        start = self.history * self.stride
        return self._transpose(x)[..., start : start + new_frames * self.stride]

    def _transpose(self, x: torch.Tensor) -> torch.Tensor:
        """The transposed conv; on the CPU, short inputs go through one matmul instead.

        PyTorch's CPU transposed conv costs tens of milliseconds per call for the big
        first vocoder block whatever the length, which would dominate a streamed frame.
        A matmul plus overlap-add computes the same sums (in another order, so equal to
        about 1e-6 relative).
        """
        weight = self.conv.weight
        in_ch, out_ch, kernel = weight.shape
        if x.device.type != "cpu" or x.shape[-1] > 64 or kernel % self.stride:
            return self.conv(x)
        b, _, length = x.shape
        m, s = kernel // self.stride, self.stride
        cols = torch.matmul(x.transpose(1, 2), weight.reshape(in_ch, out_ch * kernel))
        cols = cols.view(b, length, out_ch, m, s)
        out = x.new_zeros(b, length + m - 1, out_ch, s)
        for j in range(m):
            out[:, j : j + length] += cols[:, :, :, j]
        y = out.permute(0, 2, 1, 3).reshape(b, out_ch, (length + m - 1) * s)
        return y + self.conv.bias[None, :, None]


class SnakeBeta(nn.Module):
    """x + sin^2(x * e^alpha) / e^beta, per channel (alpha, beta stored as logs)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(self.alpha.unsqueeze(0).unsqueeze(-1))
        beta = torch.exp(self.beta.unsqueeze(0).unsqueeze(-1))
        return x + (1.0 / (beta + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = CausalConv1d(dim, dim, 7, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        h = self.dwconv(x, cache).permute(0, 2, 1)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).permute(0, 2, 1)


class LayerScale(nn.Module):
    def __init__(self, dim: int, initial: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), initial))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


class GeluMlp(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, intermediate, bias=False)
        self.fc2 = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables [1, T, head_dim], computed in fp32 the way the official model does."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=positions.device).float()
    inv_freq = 1.0 / (theta ** (exponents / head_dim))
    freqs = (inv_freq[None, :, None] @ positions[None, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class Attention(nn.Module):
    """Multi-head self-attention with RoPE; keeps a bounded key/value cache when streaming."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: StreamCache | None = None,
        keep: int = 0,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope[0].unsqueeze(1), rope[1].unsqueeze(1)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            past = cache.get(self)
            if past is not None:
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            start = max(k.shape[2] - keep, 0)
            cache[self] = (k[:, :, start:], v[:, :, start:])
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and t > 1, scale=self.head_dim**-0.5
        )
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class TransformerLayer(nn.Module):
    """Pre-norm block with layer-scaled residuals (the Mimi / Qwen3-TTS codec layout)."""

    def __init__(
        self, attn: Attention, mlp: nn.Module, norm1: nn.Module, norm2: nn.Module,
        hidden: int, scale: float,
    ) -> None:
        super().__init__()
        self.self_attn = attn
        self.mlp = mlp
        self.input_layernorm = norm1
        self.post_attention_layernorm = norm2
        self.self_attn_layer_scale = LayerScale(hidden, scale)
        self.mlp_layer_scale = LayerScale(hidden, scale)

    def forward(self, x, rope, mask, cache=None, keep=0):  # type: ignore[no-untyped-def]
        h = self.self_attn(self.input_layernorm(x), rope, mask, cache, keep)
        x = x + self.self_attn_layer_scale(h)
        return x + self.mlp_layer_scale(self.mlp(self.post_attention_layernorm(x)))


def run_layers(
    layers: nn.ModuleList,
    x: torch.Tensor,
    *,
    head_dim: int,
    theta: float,
    window: int | None,
    cache: StreamCache | None = None,
) -> torch.Tensor:
    """Run causal layers over x [B, T, H]; `window` keys per query (None: all of them).

    With a cache, positions continue from the previous call and each layer keeps the last
    `window - 1` keys, which is all the next frame can see.
    """
    t = x.shape[1]
    start = cache.get(layers, 0) if cache is not None else 0
    q_pos = torch.arange(start, start + t, device=x.device)
    past = min(start, window - 1) if (cache is not None and window is not None) else 0
    if cache is not None and window is None:
        raise ValueError("incremental use needs a sliding window")
    k_pos = torch.arange(start - past, start + t, device=x.device)
    mask = None
    if window is not None and (past > 0 or t > 1):
        mask = (k_pos[None, :] <= q_pos[:, None]) & (k_pos[None, :] > q_pos[:, None] - window)
    rope = rope_cos_sin(q_pos, head_dim, theta, x.dtype)
    keep = (window - 1) if window is not None else 0
    for layer in layers:
        x = layer(x, rope, mask, cache, keep)
    if cache is not None:
        cache[layers] = start + t
    return x
