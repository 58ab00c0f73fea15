"""The 12 Hz vocoder: codes [B, 16, T] -> 24 kHz waveform [B, 1, T * 1920].

It is causal end to end (left-padded convs, right-trimmed transposed convs, causal
sliding-window attention), so audio for a frame depends only on that frame and earlier
ones; `forward(codes, cache)` exploits this to decode incrementally. Module and parameter
names mirror the official checkpoint's `decoder.*` tensors.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import DecoderConfig
from .layers import (
    Attention,
    CausalConv1d,
    CausalConvTranspose1d,
    ConvNeXtBlock,
    GatedMlp,
    RMSNorm,
    SnakeBeta,
    StreamCache,
    TransformerLayer,
    run_layers,
)

# How the official tokenizer decodes long code sequences: windows of this many frames,
# each re-primed with this many frames of left context whose audio is thrown away.
CHUNK_FRAMES = 300
LEFT_CONTEXT_FRAMES = 25


class _Codebook(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.cluster_usage = nn.Parameter(torch.ones(size))
        self.embedding_sum = nn.Parameter(torch.zeros(size, dim))
        self._table: torch.Tensor | None = None
        self._table_key: tuple = ()

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        # The table is a pure function of the two tensors; rebuilding it for every streamed
        # frame would cost more than the lookup, so it is kept until either tensor changes.
        s, u = self.embedding_sum, self.cluster_usage
        key = (s.data_ptr(), s._version, u.data_ptr(), u._version, s.dtype, s.device)
        if self._table is None or key != self._table_key:
            with torch.no_grad():
                self._table = s / u.clamp(min=1e-5)[:, None]
            self._table_key = key
        return F.embedding(codes, self._table)


class _VQ(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self._codebook = _Codebook(size, dim)


class _VQStack(nn.Module):
    def __init__(self, n: int, size: int, dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_VQ(size, dim) for _ in range(n)])


class _RVQ(nn.Module):
    """Residual VQ; `input_proj` is used only for encoding and is kept for the checkpoint."""

    def __init__(self, n: int, size: int, dim: int, outer_dim: int) -> None:
        super().__init__()
        self.input_proj = nn.Conv1d(outer_dim, dim, 1, bias=False)
        self.output_proj = nn.Conv1d(dim, outer_dim, 1, bias=False)
        self.vq = _VQStack(n, size, dim)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n, T] -> [B, outer_dim, T]."""
        total = None
        for i, layer in enumerate(self.vq.layers):
            part = layer._codebook.lookup(codes[:, i]).transpose(1, 2)
            total = part if total is None else total + part
        return self.output_proj(total)


class SplitRVQ(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        dim = cfg.codebook_dim // 2
        self.rvq_first = _RVQ(1, cfg.codebook_size, dim, cfg.codebook_dim)
        self.rvq_rest = _RVQ(cfg.num_quantizers - 1, cfg.codebook_size, dim, cfg.codebook_dim)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.rvq_first.decode(codes[:, :1]) + self.rvq_rest.decode(codes[:, 1:])


class DecoderTransformer(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_size
        self.layers = nn.ModuleList(
            TransformerLayer(
                Attention(h, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim),
                GatedMlp(h, cfg.intermediate_size),
                RMSNorm(h, cfg.rms_norm_eps),
                RMSNorm(h, cfg.rms_norm_eps),
                h,
                0.01,
            )
            for _ in range(cfg.num_hidden_layers)
        )
        self.norm = RMSNorm(h, cfg.rms_norm_eps)
        self.input_proj = nn.Linear(cfg.latent_dim, h)
        self.output_proj = nn.Linear(h, cfg.latent_dim)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        x = self.input_proj(x)
        x = run_layers(
            self.layers, x, head_dim=self.cfg.head_dim, theta=self.cfg.rope_theta,
            window=self.cfg.sliding_window, cache=cache,
        )
        return self.output_proj(self.norm(x))


class ResidualUnit(nn.Module):
    def __init__(self, dim: int, dilation: int) -> None:
        super().__init__()
        self.act1 = SnakeBeta(dim)
        self.conv1 = CausalConv1d(dim, dim, 7, dilation=dilation)
        self.act2 = SnakeBeta(dim)
        self.conv2 = CausalConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        h = self.conv1(self.act1(x), cache)
        return x + self.conv2(self.act2(h), cache)


class DecoderBlock(nn.Module):
    """Snake, upsampling transposed conv, then three dilated residual units."""

    def __init__(self, in_dim: int, out_dim: int, rate: int) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            [SnakeBeta(in_dim), CausalConvTranspose1d(in_dim, out_dim, 2 * rate, rate)]
            + [ResidualUnit(out_dim, d) for d in (1, 3, 9)]
        )

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        x = self.block[0](x)
        for layer in self.block[1:]:
            x = layer(x, cache)
        return x


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pre_transformer = DecoderTransformer(cfg)
        self.quantizer = SplitRVQ(cfg)
        self.pre_conv = CausalConv1d(cfg.codebook_dim, cfg.latent_dim, 3)
        self.upsample = nn.ModuleList(
            nn.ModuleList(
                [CausalConvTranspose1d(cfg.latent_dim, cfg.latent_dim, f, f), ConvNeXtBlock(cfg.latent_dim)]
            )
            for f in cfg.upsampling_ratios
        )
        dims = [cfg.decoder_dim // 2**i for i in range(len(cfg.upsample_rates) + 1)]
        self.decoder = nn.ModuleList(
            [CausalConv1d(cfg.latent_dim, dims[0], 7)]
            + [DecoderBlock(dims[i], dims[i + 1], r) for i, r in enumerate(cfg.upsample_rates)]
            + [SnakeBeta(dims[-1]), CausalConv1d(dims[-1], 1, 7)]
        )

    def forward(self, codes: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        """codes [B, num_quantizers, T] (valid ids) -> waveform [B, 1, T * samples_per_frame]."""
        x = self.pre_conv(self.quantizer.decode(codes), cache).transpose(1, 2)
        x = self.pre_transformer(x, cache).permute(0, 2, 1)
        for trans_conv, convnext in self.upsample:
            x = convnext(trans_conv(x, cache), cache)
        x = self.decoder[0](x, cache)
        for block in self.decoder[1:-2]:
            x = block(x, cache)
        x = self.decoder[-1](self.decoder[-2](x), cache)
        return x.clamp(min=-1, max=1)

    def chunked(
        self,
        codes: torch.Tensor,
        chunk_frames: int = CHUNK_FRAMES,
        left_context_frames: int = LEFT_CONTEXT_FRAMES,
    ) -> torch.Tensor:
        """Whole-sequence decode in the official windows (bounds attention cost and memory)."""
        per_frame = self.cfg.samples_per_frame
        pieces = []
        start, total = 0, codes.shape[-1]
        while start < total:
            end = min(start + chunk_frames, total)
            context = left_context_frames if start - left_context_frames > 0 else start
            wav = self(codes[..., start - context : end])
            pieces.append(wav[..., context * per_frame :])
            start = end
        return torch.cat(pieces, dim=-1)
