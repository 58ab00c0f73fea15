"""Reference recordings for the voice tests, spoken by espeak-ng and converted with sox.

espeak-ng writes 22050 Hz mono WAV; sox turns it into the other formats, rates and
channel counts a user might hand to `voices clone`, and into the bad inputs the checks
must refuse (silence, clipping, a whisper, too short, too long). Written once per session.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SENTENCE = (
    "The quick brown fox jumps over the lazy dog, then it runs back home "
    "and sleeps by the warm fire until the morning light comes in."
)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _espeak(path: Path, text: str) -> Path:
    _run("espeak-ng", "-w", str(path), text)
    return path


@pytest.fixture(scope="session")
def speech_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Named recordings: good ones in several formats, and each kind of bad one."""
    d = tmp_path_factory.mktemp("speech")
    base = _espeak(d / "base.wav", SENTENCE)  # about 7 s, 22050 Hz mono
    files = {"wav22k": base}
    # 1.5 s of silence before and after, stereo 44.1 kHz FLAC.
    files["flac44k_stereo_padded"] = d / "padded.flac"
    _run("sox", str(base), "-r", "44100", "-c", "2", str(files["flac44k_stereo_padded"]), "pad", "1.5", "1.5")
    files["ogg16k"] = d / "speech.ogg"
    _run("sox", str(base), "-r", "16000", str(files["ogg16k"]))
    files["wav48k_24bit"] = d / "speech48k.wav"
    _run("sox", str(base), "-r", "48000", "-b", "24", str(files["wav48k_24bit"]))
    files["short"] = _espeak(d / "short.wav", "Hello there.")
    files["long"] = _espeak(d / "long.wav", " ".join([SENTENCE] * 5))
    files["four_seconds"] = d / "four.wav"
    _run("sox", str(base), str(files["four_seconds"]), "trim", "0", "4")
    files["silent"] = d / "silent.wav"
    _run("sox", "-n", "-r", "22050", "-c", "1", str(files["silent"]), "synth", "6", "sine", "440", "vol", "0")
    files["quiet"] = d / "quiet.wav"
    _run("sox", str(base), str(files["quiet"]), "vol", "0.004")
    files["clipped"] = d / "clipped.wav"
    _run("sox", "-V1", str(base), str(files["clipped"]), "vol", "8")
    files["corrupt"] = d / "corrupt.wav"
    files["corrupt"].write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(200)))
    files["empty"] = d / "empty.flac"
    files["empty"].write_bytes(b"")
    return files


def read_24k(path: Path) -> np.ndarray:
    """A file as 24 kHz mono float32 (what load_audio hands the checks)."""
    import librosa

    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    return librosa.resample(mono, orig_sr=rate, target_sr=24000).astype(np.float32)
