"""Speaker encoder of the Qwen3-TTS Base models: reference audio -> one speaker embedding.

It is an ECAPA-TDNN over a 128-band log-mel spectrogram of 24 kHz audio. The embedding
conditions the talker when cloning a voice. Parameter names match the official
checkpoint's `speaker_encoder.*` tensors (without that prefix); the mel settings are the
ones the official model hard-codes, so the same audio gives the same embedding.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sisyphus.errors import ModelError, TTSError

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 24000
N_FFT = 1024
HOP = 256
N_MELS = 128
FMAX_HZ = 12000
_PAD = (N_FFT - HOP) // 2
MIN_SAMPLES = _PAD + 1  # the mel's reflect padding needs more samples than it pads


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    """Fields and defaults of the official `speaker_encoder_config` (config.json)."""

    mel_dim: int = 128
    enc_dim: int = 1024
    enc_channels: tuple[int, ...] = (512, 512, 512, 512, 1536)
    enc_kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 1)
    enc_dilations: tuple[int, ...] = (1, 2, 3, 4, 1)
    enc_attention_channels: int = 128
    enc_res2net_scale: int = 8
    enc_se_channels: int = 128
    sample_rate: int = 24000

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SpeakerEncoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ModelError(
                f"speaker_encoder_config has unknown keys: {', '.join(unknown)}",
                "use the config.json of an official Qwen3-TTS Base checkpoint",
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        cfg = cls(**values)
        n = len(cfg.enc_channels)
        if n < 3 or len(cfg.enc_kernel_sizes) != n or len(cfg.enc_dilations) != n:
            raise ModelError(
                "speaker_encoder_config: enc_channels, enc_kernel_sizes and enc_dilations "
                "must have the same length (at least 3)",
                "use the config.json of an official Qwen3-TTS Base checkpoint",
            )
        if cfg.sample_rate != SAMPLE_RATE_HZ or cfg.mel_dim != N_MELS:
            raise ModelError(
                f"speaker encoder expects {cfg.mel_dim} mels at {cfg.sample_rate} Hz; "
                f"Sisyphus supports {N_MELS} at {SAMPLE_RATE_HZ} Hz only",
                "use an official Qwen3-TTS 12Hz Base checkpoint",
            )
        return cfg


def _conv(in_ch: int, out_ch: int, kernel: int = 1, dilation: int = 1) -> nn.Conv1d:
    return nn.Conv1d(in_ch, out_ch, kernel, dilation=dilation, padding="same", padding_mode="reflect")


class TDNNBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.conv = _conv(in_ch, out_ch, kernel, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class Res2NetBlock(nn.Module):
    """Splits channels into `scale` groups; each group's conv also sees the previous output."""

    def __init__(self, channels: int, scale: int, kernel: int, dilation: int) -> None:
        super().__init__()
        part = channels // scale
        self.scale = scale
        self.blocks = nn.ModuleList(TDNNBlock(part, part, kernel, dilation) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for i, part in enumerate(torch.chunk(x, self.scale, dim=1)):
            if i == 0:
                out = part
            elif i == 1:
                out = self.blocks[0](part)
            else:
                out = self.blocks[i - 1](part + outs[-1])
            outs.append(out)
        return torch.cat(outs, dim=1)


class SEBlock(nn.Module):
    def __init__(self, channels: int, se_channels: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, se_channels)
        self.conv2 = _conv(se_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.conv2(F.relu(self.conv1(x.mean(dim=2, keepdim=True)))))
        return x * s


class SERes2NetBlock(nn.Module):
    def __init__(
        self, in_ch: int, out_ch: int, cfg: SpeakerEncoderConfig, kernel: int, dilation: int
    ) -> None:
        super().__init__()
        self.tdnn1 = TDNNBlock(in_ch, out_ch, 1, 1)
        self.res2net_block = Res2NetBlock(out_ch, cfg.enc_res2net_scale, kernel, dilation)
        self.tdnn2 = TDNNBlock(out_ch, out_ch, 1, 1)
        self.se_block = SEBlock(out_ch, cfg.enc_se_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se_block(self.tdnn2(self.res2net_block(self.tdnn1(x))))


def _weighted_stats(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = (weights * x).sum(2)
    std = torch.sqrt((weights * (x - mean.unsqueeze(2)).pow(2)).sum(2).clamp(1e-12))
    return mean, std


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and std over time, the attention seeing global statistics."""

    def __init__(self, channels: int, attention_channels: int) -> None:
        super().__init__()
        self.tdnn = TDNNBlock(channels * 3, attention_channels, 1, 1)
        self.conv = _conv(attention_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1]
        ones = torch.ones(x.shape[0], 1, frames, dtype=x.dtype, device=x.device)
        uniform = ones / ones.sum(dim=2, keepdim=True)
        mean, std = _weighted_stats(x, uniform)
        context = torch.cat(
            [x, mean.unsqueeze(2).repeat(1, 1, frames), std.unsqueeze(2).repeat(1, 1, frames)], dim=1
        )
        attention = F.softmax(self.conv(torch.tanh(self.tdnn(context))), dim=2)
        mean, std = _weighted_stats(x, attention)
        return torch.cat((mean, std), dim=1).unsqueeze(2)


class SpeakerEncoder(nn.Module):
    def __init__(self, cfg: SpeakerEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, ks, dil = cfg.enc_channels, cfg.enc_kernel_sizes, cfg.enc_dilations
        blocks: list[nn.Module] = [TDNNBlock(cfg.mel_dim, ch[0], ks[0], dil[0])]
        for i in range(1, len(ch) - 1):
            blocks.append(SERes2NetBlock(ch[i - 1], ch[i], cfg, ks[i], dil[i]))
        self.blocks = nn.ModuleList(blocks)
        self.mfa = TDNNBlock(ch[-1], ch[-1], ks[-1], dil[-1])
        self.asp = AttentiveStatsPool(ch[-1], cfg.enc_attention_channels)
        self.fc = _conv(ch[-1] * 2, cfg.enc_dim)

    @classmethod
    def from_config(cls, speaker_encoder_config: dict[str, Any]) -> SpeakerEncoder:
        """Build (untrained) from the `speaker_encoder_config` dict of the model's config.json."""
        return cls(SpeakerEncoderConfig.from_dict(speaker_encoder_config))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """mels [B, frames, mel_dim] -> embeddings [B, enc_dim]."""
        x = mels.transpose(1, 2)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        x = self.mfa(torch.cat(outs[1:], dim=1))
        return self.fc(self.asp(x)).squeeze(-1)

    @property
    def min_samples(self) -> int:
        """Shortest audio the reflect-padded convs accept (each needs frames > its padding)."""
        cfg = self.cfg
        pads = [-(-d * (k - 1) // 2) for k, d in zip(cfg.enc_kernel_sizes, cfg.enc_dilations)]
        return max(MIN_SAMPLES, (max(pads) + 1) * HOP)

    def embed(self, audio_24k: np.ndarray) -> torch.Tensor:
        """Mono 24 kHz float audio -> embedding [enc_dim] (on this module's device and dtype)."""
        wav = _check_audio(audio_24k, self.min_samples)
        param = next(self.parameters())
        with torch.inference_mode():
            mels = mel_spectrogram(torch.from_numpy(wav).unsqueeze(0)).transpose(1, 2)
            return self(mels.to(param.device, param.dtype))[0]


def _check_audio(audio: np.ndarray, min_samples: int) -> np.ndarray:
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.floating) or audio.ndim != 1:
        raise TTSError(
            f"speaker reference audio must be a 1-D float array, got {audio.dtype} {list(audio.shape)}",
            "pass mono float samples at 24 kHz",
        )
    if audio.shape[0] < min_samples:
        raise TTSError(
            f"speaker reference audio is too short ({audio.shape[0]} samples)",
            f"pass at least {min_samples} samples at 24 kHz (a few seconds of speech is best)",
        )
    if not np.all(np.isfinite(audio)):
        raise TTSError("speaker reference audio contains NaN or infinite samples", "check the file")
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        log.warning("speaker reference audio peaks at %.2f, outside [-1, 1]", peak)
    return audio.astype(np.float32)


@functools.cache
def _mel_basis() -> torch.Tensor:
    import librosa  # deferred: heavy import, only needed when cloning a voice

    basis = librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=N_FFT, n_mels=N_MELS, fmin=0, fmax=FMAX_HZ)
    return torch.from_numpy(basis).float()


def mel_spectrogram(audio: torch.Tensor) -> torch.Tensor:
    """[B, samples] at 24 kHz -> log-mel [B, 128, frames] with the official settings.

    Slaney-normalised librosa filters, Hann window, reflect padding of (n_fft - hop) / 2 on
    each side instead of centring, magnitude with a 1e-9 floor inside the root, log clamped
    at 1e-5.
    """
    audio = audio.to(torch.float32)
    padded = F.pad(audio.unsqueeze(1), (_PAD, _PAD), mode="reflect").squeeze(1)
    spec = torch.stft(
        padded, N_FFT, hop_length=HOP, win_length=N_FFT, window=torch.hann_window(N_FFT, device=audio.device),
        center=False, normalized=False, onesided=True, return_complex=True,
    )
    magnitude = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + 1e-9)
    mel = torch.matmul(_mel_basis().to(audio.device), magnitude)
    return torch.log(torch.clamp(mel, min=1e-5))
