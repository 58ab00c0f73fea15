"""Real, intelligible test speech from espeak-ng, and tools to lay it out on a timeline.

espeak-ng is deterministic for a given text and voice, so tests that build a conversation
from it (speech, silence, speech) know where each sentence begins and ends: the offsets
of the concatenation plus the voiced span inside each clip, measured from its energy.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

ESPEAK = "espeak-ng"


def have_espeak() -> bool:
    return shutil.which(ESPEAK) is not None


def espeak_wav(
    text: str,
    path: Path,
    rate_hz: int = 16_000,
    *,
    voice: str = "en-us",
    words_per_minute: int = 160,
) -> np.ndarray:
    """Speak `text` into a mono 16-bit WAV at `rate_hz` and return it as float32 in [-1, 1]."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(
            [ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        audio, native_hz = sf.read(raw, dtype="float32", always_2d=False)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if native_hz != rate_hz:
        audio = librosa.resample(audio, orig_sr=native_hz, target_sr=rate_hz, res_type="soxr_hq")
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate_hz, subtype="PCM_16")
    return audio


def espeak(text: str, rate_hz: int = 16_000, *, voice: str = "en-us", words_per_minute: int = 160) -> np.ndarray:
    """espeak_wav without keeping the file."""
    with tempfile.TemporaryDirectory() as tmp:
        return espeak_wav(text, Path(tmp) / "speech.wav", rate_hz, voice=voice, words_per_minute=words_per_minute)


def voiced_span(audio: np.ndarray, rate_hz: int = 16_000, *, floor_db: float = -40.0) -> tuple[float, float]:
    """Seconds of the first and last 10 ms window whose RMS is within `floor_db` of the loudest.

    An independent measure of where speech is inside a clip (espeak pads its output with
    some silence), so VAD boundaries can be checked against something that is not Silero.
    """
    hop = rate_hz // 100
    n = len(audio) // hop
    if n == 0:
        raise ValueError("audio shorter than one 10 ms window")
    windows = audio[: n * hop].reshape(n, hop).astype(np.float64)
    rms_db = 10 * np.log10(np.mean(windows**2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms_db > rms_db.max() + floor_db)
    return loud[0] * hop / rate_hz, (loud[-1] + 1) * hop / rate_hz


def silence(seconds: float, rate_hz: int = 16_000) -> np.ndarray:
    return np.zeros(int(round(seconds * rate_hz)), dtype=np.float32)


def noise(seconds: float, rate_hz: int = 16_000, *, level: float = 1e-3, seed: int = 0) -> np.ndarray:
    """Quiet white noise, a more realistic background than digital zeros."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, level, int(round(seconds * rate_hz))).astype(np.float32)


def click(seconds: float = 0.03, rate_hz: int = 16_000, *, amplitude: float = 0.6, seed: int = 1) -> np.ndarray:
    """A short broadband blip (a knock on the desk): loud, but not a turn."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate_hz))
    envelope = np.exp(-np.linspace(0.0, 6.0, n))
    return (amplitude * envelope * rng.uniform(-1.0, 1.0, n)).astype(np.float32)


@dataclass(frozen=True)
class Segment:
    """Where one clip lies in a timeline: its extent and its voiced part, in seconds."""

    start_s: float
    end_s: float
    voiced_start_s: float
    voiced_end_s: float


def timeline(
    parts: Sequence[np.ndarray | float], rate_hz: int = 16_000, *, background: float = 0.0
) -> tuple[np.ndarray, list[Segment]]:
    """Concatenate clips (arrays) and gaps (seconds of silence); returns audio and each clip's Segment.

    With `background` > 0 the gaps carry white noise of that RMS level instead of zeros.
    """
    pieces: list[np.ndarray] = []
    segments: list[Segment] = []
    at = 0
    for i, part in enumerate(parts):
        if isinstance(part, np.ndarray):
            v0, v1 = voiced_span(part, rate_hz)
            start = at / rate_hz
            segments.append(Segment(start, start + len(part) / rate_hz, start + v0, start + v1))
            clip = part.astype(np.float32)
        else:
            clip = noise(part, rate_hz, level=background, seed=i) if background > 0 else silence(part, rate_hz)
        pieces.append(clip)
        at += len(clip)
    return np.concatenate(pieces), segments


def blocks(audio: np.ndarray, size: int, rate_hz: int = 16_000, *, t0_s: float = 0.0) -> Iterator[tuple[np.ndarray, float]]:
    """Split audio into blocks as a microphone would deliver them, each with its last sample's time."""
    for start in range(0, len(audio), size):
        block = audio[start : start + size]
        yield block, t0_s + (start + len(block) - 1) / rate_hz
