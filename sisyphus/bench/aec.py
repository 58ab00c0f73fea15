"""`aec` stage: how much echo the canceller removes, and what a 10 ms frame costs on one thread.

Two echo paths, both fed the packaged speech clips as the reply:

- simulated: the reply as the speaker sink hands it over, echoed 60 ms after that (a
  40 ms output latency and 20 ms of air) through a synthetic room (a decaying noise
  impulse response of about 0.2 s), 6 dB down, over a −65 dBFS noise floor; the
  canceller gets the same timestamps a sound card would give. A second pass adds the
  user talking over the reply and says how much of their speech comes through.
- virtual room (when PulseAudio is installed): real PortAudio streams in the room of
  sisyphus.bench.room, a 60 ms loopback from speaker to microphone.

Echo reduction is the microphone's energy over the cleaned signal's while the reply
plays, per clip (the canceller starts cold, so the first clips include its convergence).
These are AEC3's own figures: the session also holds the first 1.5 s of playback down
while AEC3 converges (sisyphus.audio.echo.CONVERGE_S), which the bench leaves out.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import soxr

from sisyphus.audio.echo import FRAME_SAMPLES, EchoCanceller
from sisyphus.audio.reference import FarEndReference
from sisyphus.bench.context import BenchContext
from sisyphus.frames import MIC_RATE_HZ, SPEAKER_RATE_HZ

BLOCK_S = 0.02  # the speaker sink's block
OUTPUT_LATENCY_S = 0.04
AIR_S = 0.02
ECHO_GAIN = 0.5  # −6 dB
NOISE_RMS = 10 ** (-65 / 20)
ROOM_RT_S = 0.2  # the synthetic room's reverberation (60 dB decay)
ACTIVE_DBFS = -50.0  # reference windows above this count as "the reply plays"


@dataclass
class EchoRun:
    """What one pass through the canceller measured."""

    reduction_db: list[float]  # per clip
    frame_ms: list[float]  # per 10 ms frame
    kept_db: float | None = None  # user speech through the canceller during double talk, vs alone
    realignments: int = 0  # how often the canceller moved its reference


def replies() -> list[np.ndarray]:
    """The packaged speech clips at 24 kHz, the sink's rate."""
    import soundfile as sf

    from sisyphus.bench.clips import clip_paths

    clips = []
    for path in clip_paths():
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        clips.append(soxr.resample(audio.mean(axis=1), rate, SPEAKER_RATE_HZ).astype(np.float32))
    return clips


def room_response(seed: int = 7) -> np.ndarray:
    """A synthetic impulse response: a direct path, then decaying noise (RT60 = ROOM_RT_S)."""
    rng = np.random.default_rng(seed)
    n = int(ROOM_RT_S * MIC_RATE_HZ)
    decay = np.exp(-6.9 * np.arange(n) / n)  # −60 dB over ROOM_RT_S
    response = 0.3 * rng.standard_normal(n) * decay
    response[0] = 1.0
    return (response / np.sqrt(np.sum(response**2))).astype(np.float32)


def simulate(clips: list[np.ndarray], user: np.ndarray | None = None, delay_s: float = OUTPUT_LATENCY_S + AIR_S) -> EchoRun:
    """Run the canceller on the simulated path; with `user`, the user talks over the last clip.

    `delay_s` is how long after the sink hands a sample over its echo reaches the microphone.
    """
    gap = np.zeros(int(0.8 * SPEAKER_RATE_HZ), np.float32)
    played = np.concatenate([part for clip in clips for part in (clip, gap)])
    bounds = np.cumsum([0] + [clip.size + gap.size for clip in clips]) * MIC_RATE_HZ // SPEAKER_RATE_HZ
    far16 = soxr.resample(played, SPEAKER_RATE_HZ, MIC_RATE_HZ).astype(np.float32)
    delay = int(delay_s * MIC_RATE_HZ)
    echo = ECHO_GAIN * np.convolve(far16, room_response())[: far16.size]
    near = np.concatenate([np.zeros(delay, np.float32), echo])[: far16.size]
    near = near + np.random.default_rng(3).normal(0.0, NOISE_RMS, near.size)
    talk = np.zeros_like(near)
    if user is not None:
        start = bounds[-2] + MIC_RATE_HZ // 2  # half a second into the last reply
        talk[start : start + user.size] = user[: near.size - start]
    near = (near + talk).astype(np.float32)
    reference = FarEndReference()
    canceller = EchoCanceller(reference, converge_s=0.0)  # AEC3's own figure
    block = int(BLOCK_S * SPEAKER_RATE_HZ)
    cleaned = np.zeros_like(near)
    frame_ms: list[float] = []
    for index in range(near.size // FRAME_SAMPLES):
        t_s = index * FRAME_SAMPLES / MIC_RATE_HZ
        while reference.written * 1.0 < (index + 3) * FRAME_SAMPLES:  # the sink runs ahead of the mic
            handed = int(round(reference.written * SPEAKER_RATE_HZ / MIC_RATE_HZ))
            handed = (handed + block - 1) // block * block
            reference.write(_padded(played, handed, block), handed / SPEAKER_RATE_HZ)
        frame = near[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
        started = time.perf_counter()
        out, _ = canceller.process(frame, t_s + (FRAME_SAMPLES - 1) / MIC_RATE_HZ)
        frame_ms.append((time.perf_counter() - started) * 1000)
        cleaned[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES] = out
    reductions = [_reduction(near, cleaned, far16, lo, hi, delay) for lo, hi in zip(bounds[:-1], bounds[1:])]
    kept = None
    if user is not None:
        voiced = np.abs(talk) > 0
        kept = 10 * np.log10(np.sum(cleaned[voiced] ** 2) / np.sum(talk[voiced] ** 2))
    return EchoRun(reductions, frame_ms, kept, canceller.realignments)


def _padded(audio: np.ndarray, start: int, count: int) -> np.ndarray:
    out = np.zeros(count, np.float32)
    piece = audio[start : start + count]
    out[: piece.size] = piece
    return out


def _reduction(near: np.ndarray, cleaned: np.ndarray, far: np.ndarray, lo: int, hi: int, delay: int) -> float:
    """Microphone over cleaned energy in the 100 ms windows of [lo, hi) where the reply's echo plays."""
    hop = MIC_RATE_HZ // 10
    starts = range(lo + delay, min(hi, near.size) - hop, hop)
    active = [s for s in starts if 10 * np.log10(np.mean(far[s - delay : s - delay + hop] ** 2) + 1e-12) > ACTIVE_DBFS]
    mic = sum(float(np.sum(near[s : s + hop] ** 2)) for s in active)
    out = sum(float(np.sum(cleaned[s : s + hop] ** 2)) for s in active)
    return 10 * np.log10(mic / max(out, 1e-20))


async def _room_pass(clips: list[np.ndarray]) -> EchoRun:
    """Play the clips through the room's speaker; clean what its microphone hears."""
    from sisyphus.audio.sink import SpeakerSink
    from sisyphus.audio.source import MicSource

    reference = FarEndReference()
    sink = SpeakerSink(None)
    sink.monitor = reference.write
    canceller = EchoCanceller(reference, converge_s=0.0)  # AEC3's own figure, no holding down
    reductions: list[float] = []
    frame_ms: list[float] = []
    await sink.start()
    try:
        async with MicSource(None) as mic:
            blocks = aiter(mic)
            settle_s = time.monotonic() + 1.5  # as in a session: the streams run a while before a reply
            while time.monotonic() < settle_s:
                block = await anext(blocks)
                canceller.process(block.samples, block.t_s)
            for turn, clip in enumerate(clips, start=1):
                sink.write(turn, clip)
                near_energy = out_energy = 0.0
                until_s = time.monotonic() + clip.size / SPEAKER_RATE_HZ + 0.3
                while time.monotonic() < until_s:
                    block = await anext(blocks)
                    started = time.perf_counter()
                    out, _ = canceller.process(block.samples, block.t_s)
                    frames = max(1, out.size // FRAME_SAMPLES)
                    frame_ms += [(time.perf_counter() - started) * 1000 / frames] * frames
                    near_energy += float(np.sum(block.samples**2))
                    out_energy += float(np.sum(out**2))
                reductions.append(10 * np.log10(near_energy / max(out_energy, 1e-20)))
    finally:
        await sink.close()
    return EchoRun(reductions, frame_ms)


def run(ctx: BenchContext) -> None:
    from sisyphus.bench.room import room_available, virtual_room

    ctx.say("aec: echo cancellation on a simulated echo path")
    clips = replies()
    plain = simulate(clips * 2)  # eight replies from a cold start: convergence, then steady state
    user = soxr.resample(clips[-1], SPEAKER_RATE_HZ, MIC_RATE_HZ).astype(np.float32) * ECHO_GAIN / 2
    talked_over = simulate(clips[:2], user=user)
    path = f"{(OUTPUT_LATENCY_S + AIR_S) * 1000:.0f} ms, −6 dB, {ROOM_RT_S:.1f} s room"
    ctx.report.add("aec", "per 10 ms frame", "ms", plain.frame_ms, note="AEC3 + noise suppression + high-pass, 1 thread",
                   meta={"frames": len(plain.frame_ms)})
    ctx.report.add("aec", "echo reduction, simulated", "dB", plain.reduction_db, note=f"per reply of 8 from a cold start; echo path {path}")
    ctx.report.add("aec", "user kept in double talk", "dB", [talked_over.kept_db or 0.0],
                   note="user speech 6 dB under the echo: cleaned vs alone")
    if not room_available():
        ctx.report.note("aec", "virtual room skipped: needs pulseaudio, pactl and paplay")
        return
    ctx.say("aec: echo cancellation in the virtual room (PulseAudio loopback, 60 ms)")
    with virtual_room(delay_ms=60, echo_gain=1.0):
        room = asyncio.run(_room_pass(clips))
    ctx.report.add("aec", "echo reduction, virtual room", "dB", room.reduction_db,
                   note="per reply; PortAudio through a PulseAudio loopback, 60 ms, 0 dB")
