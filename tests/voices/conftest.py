"""Reference recordings for the voice tests, spoken by espeak-ng and converted with sox.

espeak-ng writes 22050 Hz mono WAV; sox turns it into the other formats, rates and
channel counts a user might hand to `voices clone`, and into the bad inputs the checks
must refuse (silence, clipping, a whisper, too short, too long). Written once per session.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from sisyphus.config import ENV_VARS

SENTENCE = (
    "The quick brown fox jumps over the lazy dog, then it runs back home "
    "and sleeps by the warm fire until the morning light comes in."
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's SISYPHUS_* variables must not leak into the configs the tests write."""
    for var in [*ENV_VARS, "SISYPHUS_CONFIG", "SISYPHUS_DEBUG"]:
        monkeypatch.delenv(var, raising=False)


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
    files["mp3"] = d / "speech.mp3"  # libsndfile (bundled with soundfile) encodes MP3
    samples, rate = sf.read(base, dtype="float32")
    sf.write(files["mp3"], samples, rate, format="MP3")
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


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_custom(models_dir: Path) -> Path:
    """A tiny random CustomVoice checkpoint in the official layout, written once."""
    from tests.tts.support import write_tiny_checkpoint

    return write_tiny_checkpoint(models_dir / "custom", kind="custom_voice")


@pytest.fixture(scope="session")
def tiny_base(models_dir: Path) -> Path:
    """A tiny random Base checkpoint (with speaker encoder), written once."""
    from tests.tts.support import write_tiny_checkpoint

    return write_tiny_checkpoint(models_dir / "base", kind="base")


@pytest.fixture(scope="session")
def tiny_other_base(models_dir: Path) -> Path:
    """A second Base checkpoint: same shapes, other weights, so other clone prompts."""
    from tests.tts.support import write_tiny_checkpoint

    return write_tiny_checkpoint(models_dir / "base-other", kind="base", seed=7)


@pytest.fixture
def config_file(tmp_path: Path, models_dir: Path, tiny_custom: Path) -> Path:
    """A models.yaml next to an empty voice library; replies are cut at 6 codec frames.

    Tests that clone or speak with a cloned voice also request `tiny_base`.
    """
    path = tmp_path / "models.yaml"
    path.write_text(
        "device: cpu\n"
        "dtype: fp32\n"
        "models:\n"
        f"  tts_custom: {tiny_custom}\n"
        f"  tts_base: {models_dir / 'base'}\n"
        f"  asr: {tmp_path / 'no-asr'}\n"
        "voice:\n"
        "  library: my-voices\n"
        "tts:\n"
        "  seed: 0\n"
        "  max_seconds_per_phrase: 0.48\n",
        encoding="utf-8",
    )
    return path
