"""Audible first audio in a turn's latency: the first chunk arrives, the listener hears later.

A TTS stand-in whose first chunk starts with one near-silent 80 ms frame, on a clock the
TTS moves as it "generates", so every time the controller reads is known.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sisyphus.agent.controller import TurnController, TypedText
from sisyphus.frames import TurnLatency
from tests.agent.fakes import RATE_HZ, ManualSink, ScriptedLLM, SentenceChunker
from tests.agent.test_controller import TIMEOUT_S, RecordingHistory, drain

FRAME = 1920  # 80 ms at 24 kHz


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class QuietStartTTS:
    """Chunks of two frames; the reply's first `quiet_frames` are hiss at -60 dBFS, the rest a tone.

    Chunk k is ready `first_s + k * every_s` after the phrase starts (the clock is moved here,
    on the TTS thread, before the controller reads it)."""

    sample_rate_hz = RATE_HZ

    def __init__(self, clock: Clock, first_s: float, every_s: float, quiet_frames: int = 1) -> None:
        self.clock, self.first_s, self.every_s, self.quiet_frames = clock, first_s, every_s, quiet_frames
        self.spoken = 0

    def stream(self, text, voice, *, language=None, cancel=None):
        started = self.clock.now_s
        for k in range(3):
            self.clock.now_s = started + self.first_s + k * self.every_s
            t = np.arange(2 * FRAME) / RATE_HZ
            chunk = (0.1 * np.sin(2 * np.pi * 220 * t + 0.3)).astype(np.float32)
            quiet = max(0, min(2 * FRAME, self.quiet_frames * FRAME - self.spoken))
            chunk[:quiet] = np.random.default_rng(k).uniform(-0.001, 0.001, quiet)
            self.spoken += chunk.size
            yield chunk


def run_turn(tts_first_s: float, every_s: float, quiet_frames: int = 1) -> TurnLatency:
    async def scenario():
        clock = Clock()
        events: asyncio.Queue = asyncio.Queue()
        controller = TurnController(
            asr=None, llm=ScriptedLLM(["Hello there. How are you?"]),
            tts=QuietStartTTS(clock, tts_first_s, every_s, quiet_frames),
            sink=ManualSink(clock=clock), history=RecordingHistory(), make_chunker=SentenceChunker, events=events,
            voice="vivian", clock=clock,
        )  # fmt: skip
        inputs: asyncio.Queue = asyncio.Queue()
        inputs.put_nowait(TypedText("hi", 0.0))
        inputs.put_nowait(None)
        await asyncio.wait_for(controller.run(inputs), TIMEOUT_S)
        return drain(events)

    return next(e for e in asyncio.run(scenario()) if isinstance(e, TurnLatency))


def test_audible_first_audio_is_one_quiet_frame_after_the_first_chunk():
    latency = run_turn(tts_first_s=0.030, every_s=0.050)
    assert latency.tts_first_audio_ms == pytest.approx(30.0)
    # The first sample above -50 dBFS is the first of the second frame: 30 + 80 ms.
    assert latency.tts_audible_ms == pytest.approx(110.0, abs=0.05)


@pytest.mark.parametrize(("every_s", "audible_ms"), [(0.050, 170.0), (0.500, 510.0)], ids=["in-time", "underrun"])
def test_a_quiet_first_chunk_is_heard_when_the_next_one_plays(every_s, audible_ms):
    """The first chunk (10..170 ms) is all hiss; the second plays after it, or when it arrives if later."""
    latency = run_turn(tts_first_s=0.010, every_s=every_s, quiet_frames=2)
    assert latency.tts_first_audio_ms == pytest.approx(10.0)
    assert latency.tts_audible_ms == pytest.approx(audible_ms, abs=0.05)


def test_a_reply_that_is_never_loud_has_no_audible_figure():
    latency = run_turn(tts_first_s=0.010, every_s=0.050, quiet_frames=100)
    assert latency.tts_first_audio_ms == pytest.approx(10.0)
    assert latency.tts_audible_ms is None
