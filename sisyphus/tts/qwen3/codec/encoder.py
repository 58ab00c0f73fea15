"""The 12 Hz encoder (a Mimi encoder): 24 kHz waveform [B, 1, L] -> codes [B, K, ceil(L / 1920)].

SEANet convs take the audio to 25 Hz, a causal transformer mixes context, a strided conv
halves the rate to 12.5 Hz, and a split residual VQ (1 semantic + acoustic codebooks) picks
codes by nearest Euclidean neighbour. Only the first K codebooks are ever computed; the
rest (32 in the checkpoint) are kept so the official file loads and saves unchanged.
Module and parameter names mirror the checkpoint's `encoder.*` tensors.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import EncoderConfig
from .layers import Attention, CausalConv1d, GeluMlp, TransformerLayer, run_layers


class _ResnetBlock(nn.Module):
    def __init__(self, cfg: EncoderConfig, dim: int, dilation: int) -> None:
        super().__init__()
        hidden = dim // cfg.compress
        self.block = nn.ModuleList(
            [
                nn.ELU(),
                CausalConv1d(dim, hidden, cfg.residual_kernel_size, dilation=dilation, pad_mode=cfg.pad_mode),
                nn.ELU(),
                CausalConv1d(hidden, dim, 1, pad_mode=cfg.pad_mode),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.block:
            h = layer(h)
        return x + h


class SEANetEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            CausalConv1d(cfg.audio_channels, cfg.num_filters, cfg.kernel_size, pad_mode=cfg.pad_mode)
        ]
        dim = cfg.num_filters
        for ratio in cfg.downsampling_ratios:
            for j in range(cfg.num_residual_layers):
                layers.append(_ResnetBlock(cfg, dim, cfg.dilation_growth_rate**j))
            layers.append(nn.ELU())
            layers.append(CausalConv1d(dim, 2 * dim, 2 * ratio, stride=ratio, pad_mode=cfg.pad_mode))
            dim *= 2
        layers.append(nn.ELU())
        layers.append(CausalConv1d(dim, cfg.hidden_size, cfg.last_kernel_size, pad_mode=cfg.pad_mode))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class EncoderTransformer(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_size
        self.layers = nn.ModuleList(
            TransformerLayer(
                Attention(h, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim),
                GeluMlp(h, cfg.intermediate_size),
                nn.LayerNorm(h, eps=cfg.norm_eps),
                nn.LayerNorm(h, eps=cfg.norm_eps),
                h,
                0.01,
            )
            for _ in range(cfg.num_hidden_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The official encoder attends causally over the whole clip: its configured
        # sliding window is not applied, so none is applied here either.
        return run_layers(self.layers, x, head_dim=self.cfg.head_dim, theta=self.cfg.rope_theta, window=None)


class _Codebook(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("initialized", torch.ones(1))
        self.register_buffer("cluster_usage", torch.ones(size))
        self.register_buffer("embed_sum", torch.zeros(size, dim))

    def table(self) -> torch.Tensor:
        return self.embed_sum / self.cluster_usage.clamp(min=1e-5)[:, None]


class _VQ(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.codebook = _Codebook(size, dim)


class _RVQ(nn.Module):
    """Residual VQ; `output_proj` is used only for decoding and is kept for the checkpoint."""

    def __init__(self, cfg: EncoderConfig, n: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_VQ(cfg.codebook_size, cfg.codebook_dim) for _ in range(n))
        self.input_proj: nn.Module | None = None
        self.output_proj: nn.Module | None = None
        if cfg.vq_hidden_dim != cfg.hidden_size:
            self.input_proj = nn.Conv1d(cfg.hidden_size, cfg.vq_hidden_dim, 1, bias=False)
            self.output_proj = nn.Conv1d(cfg.vq_hidden_dim, cfg.hidden_size, 1, bias=False)

    def encode(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """x [B, hidden, T] -> codes [B, n, T], nearest neighbour on the running residual."""
        if self.input_proj is not None:
            x = self.input_proj(x)
        residual = x
        codes = []
        for layer in self.layers[:n]:
            table = layer.codebook.table()
            b, d, t = residual.shape
            flat = residual.permute(0, 2, 1).reshape(-1, d)
            dists = torch.cdist(flat[None].float(), table[None].float(), p=2)[0]
            idx = dists.argmin(dim=-1).view(b, t)
            residual = residual - F.embedding(idx, table).permute(0, 2, 1)
            codes.append(idx)
        return torch.stack(codes, dim=1)


class SplitRVQ(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.num_semantic = cfg.num_semantic_quantizers
        self.semantic_residual_vector_quantizer = _RVQ(cfg, cfg.num_semantic_quantizers)
        self.acoustic_residual_vector_quantizer = _RVQ(cfg, cfg.num_quantizers - cfg.num_semantic_quantizers)

    def encode(self, x: torch.Tensor, n: int) -> torch.Tensor:
        codes = self.semantic_residual_vector_quantizer.encode(x, self.num_semantic)
        if n > self.num_semantic:
            rest = self.acoustic_residual_vector_quantizer.encode(x, n - self.num_semantic)
            codes = torch.cat([codes, rest], dim=1)
        return codes


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.encoder = SEANetEncoder(cfg)
        self.encoder_transformer = EncoderTransformer(cfg)
        self.downsample = CausalConv1d(
            cfg.hidden_size, cfg.hidden_size, cfg.downsample_kernel, stride=2, bias=False,
            pad_mode="replicate",
        )
        self.quantizer = SplitRVQ(cfg)

    def forward(self, wav: torch.Tensor, num_codebooks: int) -> torch.Tensor:
        """wav [B, channels, L] -> codes [B, num_codebooks, frames]."""
        x = self.encoder(wav)
        x = self.encoder_transformer(x.transpose(1, 2)).transpose(1, 2)
        return self.quantizer.encode(self.downsample(x), num_codebooks)
