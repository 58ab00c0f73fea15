"""Checks a clone reference before any model sees it, and trims it to the speech.

A bad reference makes a bad voice without any error from the model, so the library
refuses what would clone badly — silence, clipping, a whisper, too little or too much
speech — with a message saying what to fix. Silero VAD decides where speech is: the
leading and trailing non-speech is cut (keeping a short pad), and a file where Silero
finds no speech is refused. The length rule applies to the trimmed clip.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.signal import resample_poly

from sisyphus.errors import VoiceError

log = logging.getLogger(__name__)

RATE_HZ = 24000
VAD_RATE_HZ = 16000
# Hard limits on the trimmed clip, and the range the model clones best from.
MIN_SECONDS = 3.0
MAX_SECONDS = 30.0
GOOD_MIN_SECONDS = 5.0
GOOD_MAX_SECONDS = 15.0
# Silence kept before the first and after the last speech.
PAD_SECONDS = 0.2
# A sample this close to full scale counts as clipped; more than this share of them fails.
CLIP_LEVEL = 0.99
MAX_CLIPPED_FRACTION = 0.001
# Speech quieter than this (RMS over the speech parts) is refused.
MIN_SPEECH_DBFS = -40.0
# Louder than -20 dBFS and this flat (white noise is ~1, speech ~0.05): a damaged file.
NOISE_MIN_RMS = 0.1
NOISE_MIN_FLATNESS = 0.6
# Below this peak the file is treated as digital silence (not normalised for the VAD).
SILENCE_PEAK = 1e-4


@dataclass(frozen=True)
class CheckedReference:
    samples: np.ndarray  # trimmed, 24 kHz mono float32
    seconds: float
    trimmed_start_s: float
    trimmed_end_s: float
    speech_dbfs: float
    clipped_fraction: float
    warnings: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=1)
def _silero() -> Any:
    from silero_vad import load_silero_vad

    return load_silero_vad()


def speech_spans(samples_24k: np.ndarray) -> list[tuple[int, int]]:
    """Silero's speech spans as 24 kHz sample ranges (audio is peak-normalised first)."""
    from silero_vad import get_speech_timestamps

    peak = float(np.max(np.abs(samples_24k))) if samples_24k.size else 0.0
    if peak < SILENCE_PEAK:
        return []
    # Normalised so that quiet speech is found here and refused as quiet, not as silence.
    audio_16k = resample_poly(samples_24k / peak, VAD_RATE_HZ, RATE_HZ).astype(np.float32)
    with torch.inference_mode():
        stamps = get_speech_timestamps(
            torch.from_numpy(audio_16k), _silero(), sampling_rate=VAD_RATE_HZ, speech_pad_ms=30
        )
    scale = RATE_HZ / VAD_RATE_HZ
    return [
        (int(s["start"] * scale), min(samples_24k.size, int(round(s["end"] * scale))))
        for s in stamps
    ]


def check_reference(samples_24k: np.ndarray, source: str = "the recording") -> CheckedReference:
    """Trim to the speech and refuse what would clone badly; `source` names it in messages."""
    samples = np.asarray(samples_24k, dtype=np.float32)
    if samples.ndim != 1:
        raise VoiceError(f"{source}: expected mono samples, got shape {samples.shape}", "this is a bug")
    if not np.all(np.isfinite(samples)):
        raise VoiceError(f"{source} holds invalid (NaN or infinite) samples", "export the audio again")
    spans = speech_spans(samples)
    if not spans:
        _refuse_noise(samples, source)
        raise VoiceError(
            f"no speech found in {source}",
            "use a recording of one person speaking clearly for 5-15 seconds",
        )
    pad = int(PAD_SECONDS * RATE_HZ)
    start = max(0, spans[0][0] - pad)
    end = min(samples.size, spans[-1][1] + pad)
    clip = samples[start:end].copy()
    seconds = clip.size / RATE_HZ
    if seconds < MIN_SECONDS:
        raise VoiceError(
            f"{source} has only {seconds:.1f} s of speech, at least {MIN_SECONDS:g} s is needed",
            f"use a recording of {GOOD_MIN_SECONDS:g}-{GOOD_MAX_SECONDS:g} s of speech",
        )
    if seconds > MAX_SECONDS:
        raise VoiceError(
            f"{source} has {seconds:.1f} s of speech, at most {MAX_SECONDS:g} s is allowed",
            f"cut it to {GOOD_MIN_SECONDS:g}-{GOOD_MAX_SECONDS:g} s of speech",
        )
    clipped = float(np.mean(np.abs(clip) >= CLIP_LEVEL))
    if clipped > MAX_CLIPPED_FRACTION:
        raise VoiceError(
            f"{source} is clipped ({clipped:.2%} of samples at full scale)",
            "record again with a lower input gain",
        )
    speech = np.concatenate([samples[a:b] for a, b in spans])
    rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))))
    dbfs = 20.0 * np.log10(max(rms, 1e-12))
    if dbfs < MIN_SPEECH_DBFS:
        raise VoiceError(
            f"{source} is too quiet (speech at {dbfs:.0f} dBFS, at least {MIN_SPEECH_DBFS:g} dBFS is needed)",
            "record closer to the microphone or raise its gain",
        )
    warnings = []
    if not GOOD_MIN_SECONDS <= seconds <= GOOD_MAX_SECONDS:
        warnings.append(
            f"{source} has {seconds:.1f} s of speech; voices clone best from "
            f"{GOOD_MIN_SECONDS:g}-{GOOD_MAX_SECONDS:g} s"
        )
    log.debug("reference %s: %.2f s kept of %.2f s, %.1f dBFS", source, seconds, samples.size / RATE_HZ, dbfs)
    return CheckedReference(
        samples=clip,
        seconds=seconds,
        trimmed_start_s=start / RATE_HZ,
        trimmed_end_s=(samples.size - end) / RATE_HZ,
        speech_dbfs=dbfs,
        clipped_fraction=clipped,
        warnings=warnings,
    )


def spectral_flatness(samples: np.ndarray) -> float:
    """Geometric over arithmetic mean of the averaged power spectrum in the speech band:
    ~1 for white noise, ~0.05 for speech, ~0 for a tone."""
    from scipy.signal import welch

    freqs, power = welch(samples, fs=RATE_HZ, nperseg=min(1024, samples.size))
    # 100 Hz - 7 kHz: a file resampled from 16 or 22 kHz has nothing above its old Nyquist.
    power = power[(freqs >= 100) & (freqs <= 7000)] + 1e-20
    return float(np.exp(np.mean(np.log(power))) / np.mean(power))


def _refuse_noise(samples: np.ndarray, source: str) -> None:
    """Loud white noise is what a damaged file or a wrong sample format decodes to; say
    that rather than "no speech found", which sends the user to re-record."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    if rms < NOISE_MIN_RMS or samples.size < 2048 or spectral_flatness(samples) < NOISE_MIN_FLATNESS:
        return
    raise VoiceError(
        f"{source} decodes to loud noise ({20 * np.log10(rms):.0f} dBFS, a flat spectrum), not speech: "
        "the file looks damaged, or its samples are not in the format its header says",
        "check that it plays as speech, then export it again as 16-bit PCM WAV",
    )


def to_asr_rate(samples_24k: np.ndarray) -> np.ndarray:
    """The reference at 16 kHz, as GLM-ASR wants it for --transcribe."""
    return resample_poly(samples_24k, VAD_RATE_HZ, RATE_HZ).astype(np.float32)
