"""Shared pieces of the codec and speaker-encoder tests: configs, signals, the oracle call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sisyphus.tts.qwen3.codec import TINY_SHRINK
from tests.oracle.refenv import run_reference

ORACLE = Path(__file__).resolve().parents[1] / "oracle"
CODEC_CONFIG = Path("/work/shared/model-configs/Qwen3-TTS-12Hz-1.7B-Base/speech_tokenizer")

# The tiny codec with a 64-sample decoder frame (rates 2*2*2*2 * 2*2): cheap enough to decode
# the 310 frames that cross the official 300-frame decode window, streaming included.
SHORT_FRAME_SHRINK = {
    **TINY_SHRINK,
    "decoder_config": {**TINY_SHRINK["decoder_config"], "upsample_rates": [2, 2, 2, 2]},
    "decode_upsample_rate": 64,
}


def official_dir() -> Path:
    """The official speech_tokenizer config folder, from the repo copy if the lead added one."""
    repo_copy = Path(__file__).resolve().parents[2] / "sisyphus/tts/qwen3/official/Qwen3-TTS-12Hz-1.7B-Base"
    for candidate in (repo_copy / "speech_tokenizer", CODEC_CONFIG):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError("no official speech_tokenizer/config.json found")


def official_speaker_config() -> dict:
    model_config = official_dir().parent / "config.json"
    return json.loads(model_config.read_text(encoding="utf-8"))["speaker_encoder_config"]


def voiced_signal(seconds: float, rate_hz: int = 24000, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: a gliding harmonic voice with syllable envelopes and breath noise.

    Deterministic and free of external tools, with energy and pitch that change every few
    frames, so codes and embeddings differ from frame to frame.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t) + 25 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate_hz
    voice = sum((0.6 / k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 12))
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t) ** 2
    noise = 0.03 * rng.standard_normal(t.shape)
    audio = 0.35 * voice * syllables + noise
    return (audio / max(1.0, np.abs(audio).max() / 0.9)).astype(np.float32)


def run_oracle(script: str, *args: str | Path) -> dict:
    """Run an oracle script in the reference venv; return the JSON it printed last."""
    out = run_reference(ORACLE / script, *map(str, args))
    return json.loads(out.strip().splitlines()[-1])
