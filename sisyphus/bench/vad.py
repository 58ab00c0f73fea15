"""`vad` stage: cost of streaming endpointing per 512-sample frame on one thread.

Pushes speech (the packaged clips with pauses, else a syllable-rate amplitude-modulated
tone with pauses) through the real Silero endpointer after a warm-up and reports every
frame's time. The target is per core, so torch runs one thread while it is measured.
"""

from __future__ import annotations

import time

import numpy as np

from sisyphus.bench.context import BenchContext
from sisyphus.config import VadConfig
from sisyphus.frames import MIC_RATE_HZ

FRAME_SAMPLES = 512


def synthetic_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced-looking audio: harmonics under a 4 Hz syllable envelope, 1 s pauses every 3 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * MIC_RATE_HZ)) / MIC_RATE_HZ
    voice = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((140, 280, 420, 560)))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * ((t % 4.0) < 3.0)
    audio = 0.2 * voice * envelope + 0.003 * rng.standard_normal(len(t))
    return audio.astype(np.float32)


def measure_vad_ms_per_frame(seconds: float) -> list[float]:
    import torch

    from sisyphus.bench.asr import speech_audio
    from sisyphus.vad.endpointer import Endpointer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the target is per core; restored below
    try:
        # Silero alone: the turn model's cost is the turn stage's figure.
        return _time_frames(Endpointer(VadConfig(turn_model="none")), speech_audio(seconds))
    finally:
        torch.set_num_threads(threads)


def _time_frames(endpointer, audio: np.ndarray) -> list[float]:
    frames = [audio[i : i + FRAME_SAMPLES] for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]
    for frame in frames[:50]:  # warm-up
        endpointer.push(frame, 0.0)
    endpointer.reset()
    timings = []
    for i, frame in enumerate(frames):
        started = time.perf_counter()
        endpointer.push(frame, (i + 1) * FRAME_SAMPLES / MIC_RATE_HZ)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def run(ctx: BenchContext) -> None:
    ctx.say("vad: streaming endpointing")
    timings = measure_vad_ms_per_frame(ctx.vad_seconds)
    ctx.report.add(
        "vad", "per frame", "ms", timings,
        note=f"{FRAME_SAMPLES} samples ({FRAME_SAMPLES / MIC_RATE_HZ * 1000:.0f} ms of audio), 1 thread",
        meta={"audio_s": ctx.vad_seconds, "frame_samples": FRAME_SAMPLES},
    )
