"""Whisper log-mel features of a fixed 8 s window, the input Smart Turn v3 was trained on.

Smart Turn takes the last 8 s of 16 kHz audio, zero-padded at the front when shorter,
as the features transformers' `WhisperFeatureExtractor` makes with 80 mel bins,
`chunk_length=8`, `n_fft=400`, `hop_length=160` and `do_normalize=True`:

1. the 128 000 samples (padding included) are normalised to zero mean and unit variance;
2. a centred STFT (reflect padding of n_fft/2, periodic Hann window) gives the power
   spectrum of 801 frames; the last frame is dropped, leaving 800 (10 ms each);
3. Slaney-scale, Slaney-normalised mel filters (0-8 kHz) project it onto 80 bins;
4. log10 with a floor of 1e-10, clamped to 8 (decades) below the window's maximum,
   then scaled as (x + 4) / 4.

This is a float32 version on torch's STFT, checked in the tests against
`WhisperFeatureExtractor` itself (which computes in float64); it exists because the
extractor costs about as much as the model's inference, and float32 a quarter of that.
A process that never loads torch (`talk` with every model on remote servers) gets the
same features from numpy's FFT (equal within 1e-6, about 2.5x slower than torch's STFT).
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING

import numpy as np

from sisyphus.frames import MIC_RATE_HZ, mono_samples

WINDOW_S = 8
WINDOW_SAMPLES = WINDOW_S * MIC_RATE_HZ
N_FFT = 400
HOP_SAMPLES = 160
N_MELS = 80
N_FRAMES = WINDOW_SAMPLES // HOP_SAMPLES  # 800
MEL_FLOOR = 1e-10
NORM_EPS = 1e-7
DYNAMIC_RANGE_DECADES = 8.0


def last_window(samples_16k: np.ndarray) -> np.ndarray:
    """The last 8 s of the audio as float32, zero-padded at the front when shorter."""
    audio = np.asarray(mono_samples(samples_16k), dtype=np.float32)
    if audio.size >= WINDOW_SAMPLES:
        return audio[-WINDOW_SAMPLES:]
    return np.concatenate([np.zeros(WINDOW_SAMPLES - audio.size, dtype=np.float32), audio])


if TYPE_CHECKING:
    import torch


def log_mel_features(samples_16k: np.ndarray) -> np.ndarray:
    """Features of shape (80, 800), float32, for the last 8 s of `samples_16k`."""
    if "torch" not in sys.modules:  # not loaded (the light remote path): numpy, not a torch import
        return _log_mel_numpy(last_window(samples_16k))
    import torch

    window = torch.from_numpy(last_window(samples_16k))
    with torch.inference_mode():
        # Normalised in float32 over the whole padded window, as the extractor does.
        window = (window - window.mean()) / torch.sqrt(window.var(correction=0) + NORM_EPS)
        spectrum = torch.stft(window, N_FFT, HOP_SAMPLES, window=_hann(), center=True, pad_mode="reflect",
                              return_complex=True)
        power = spectrum.real.square() + spectrum.imag.square()  # (201, 801)
        mel = torch.clamp(_mel_filters_t() @ power, min=MEL_FLOOR)
        log_mel = torch.log10(mel)[:, :-1]  # drop the last frame: (80, 800)
        log_mel = torch.maximum(log_mel, log_mel.max() - DYNAMIC_RANGE_DECADES)
        return ((log_mel + 4.0) / 4.0).numpy()


def _log_mel_numpy(window: np.ndarray) -> np.ndarray:
    """The same steps as log_mel_features on numpy: centred frames, periodic Hann, rfft."""
    window = (window - window.mean()) / np.sqrt(window.var() + NORM_EPS)
    padded = np.pad(window, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_SAMPLES]  # (801, 400)
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    spectrum = np.fft.rfft(frames * hann, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).T.astype(np.float32)  # (201, 801)
    mel = np.maximum(_mel_filters().T.astype(np.float32) @ power, MEL_FLOOR)
    log_mel = np.log10(mel)[:, :-1]
    log_mel = np.maximum(log_mel, log_mel.max() - DYNAMIC_RANGE_DECADES)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)


@functools.cache
def _hann() -> torch.Tensor:
    """The periodic Hann window (torch.hann_window's default), float32."""
    import torch

    return torch.hann_window(N_FFT, periodic=True, dtype=torch.float32)


@functools.cache
def _mel_filters_t() -> torch.Tensor:
    """The filterbank as a float32 tensor of shape (80 mels, 201 frequency bins)."""
    import torch

    return torch.from_numpy(_mel_filters().T.astype(np.float32)).contiguous()


@functools.cache
def _mel_filters() -> np.ndarray:
    """Slaney mel filterbank, (201 frequency bins, 80 mels), area-normalised."""
    bins = np.linspace(0.0, MIC_RATE_HZ / 2, N_FFT // 2 + 1)
    mel_edges = np.linspace(_hz_to_mel(0.0), _hz_to_mel(MIC_RATE_HZ / 2), N_MELS + 2)
    hz_edges = _mel_to_hz(mel_edges)
    widths = np.diff(hz_edges)
    slopes = hz_edges[None, :] - bins[:, None]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= 2.0 / (hz_edges[2:] - hz_edges[:-2])[None, :]
    return filters


# The Slaney mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
_LINEAR_HZ_PER_MEL = 200.0 / 3
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _LINEAR_HZ_PER_MEL
    log = _BREAK_MEL + np.log(np.maximum(hz, 1e-12) / _BREAK_HZ) / _LOG_STEP
    return np.where(hz >= _BREAK_HZ, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _LINEAR_HZ_PER_MEL
    log = _BREAK_HZ * np.exp(_LOG_STEP * (mel - _BREAK_MEL))
    return np.where(mel >= _BREAK_MEL, log, linear)
