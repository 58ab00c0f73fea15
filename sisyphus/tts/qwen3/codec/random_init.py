"""Random weights for a codec that still behaves like one: bounded audio, varied codes.

Tests and benchmarks need checkpoints in the official layout without the official
weights. Plain random init makes the vocoder's residual stacks blow up and clip at +/-1,
which would hide any difference between two implementations, so residual branches and the
output conv are scaled down and norms, snakes and codebooks get non-trivial values (so a
mistake in how they are applied shows).
"""

from __future__ import annotations

import torch
from torch import nn

from . import decoder as dec
from . import encoder as enc
from .layers import ConvNeXtBlock, LayerScale, RMSNorm, SnakeBeta

RESIDUAL_GAIN = 0.3  # second conv of each vocoder residual unit
OUTPUT_GAIN = 0.04  # the vocoder's last conv


@torch.no_grad()
def randomize_(model: nn.Module, seed: int) -> None:
    """Fill every tensor of `model` deterministically from `seed`."""
    gen = torch.Generator().manual_seed(seed)

    def normal(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(torch.randn(t.shape, generator=gen) * std + mean)

    def uniform(t: torch.Tensor, low: float, high: float) -> None:
        t.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)

    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            fan_in = module.weight[0].numel()
            normal(module.weight, fan_in**-0.5)
        elif isinstance(module, nn.ConvTranspose1d):
            in_ch, _, k = module.weight.shape
            normal(module.weight, (in_ch * k / module.stride[0]) ** -0.5)
        if isinstance(module, (nn.Conv1d, nn.Linear, nn.ConvTranspose1d)) and module.bias is not None:
            normal(module.bias, 0.02)
        elif isinstance(module, nn.LayerNorm):
            normal(module.weight, 0.1, 1.0)
            normal(module.bias, 0.05)
        elif isinstance(module, RMSNorm):
            normal(module.weight, 0.1, 1.0)
        elif isinstance(module, LayerScale):
            uniform(module.scale, 0.05, 0.2)
        elif isinstance(module, ConvNeXtBlock):
            uniform(module.gamma, 0.05, 0.2)
        elif isinstance(module, SnakeBeta):
            normal(module.alpha, 0.2)
            normal(module.beta, 0.2)
        elif isinstance(module, dec._Codebook):
            normal(module.embedding_sum, 1.0)
            uniform(module.cluster_usage, 0.5, 2.0)
        elif isinstance(module, enc._Codebook):
            normal(module.embed_sum, 1.0)
            uniform(module.cluster_usage, 0.5, 2.0)
            module.initialized.fill_(1.0)
    for module in model.modules():
        if isinstance(module, dec.ResidualUnit):
            module.conv2.conv.weight.mul_(RESIDUAL_GAIN)
        if isinstance(module, dec.Decoder):
            module.decoder[-1].conv.weight.mul_(OUTPUT_GAIN)
