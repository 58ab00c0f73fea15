"""An in-process `talk` session in the virtual room (sisyphus.bench.room), for the open-speaker tests.

Real: PortAudio on PulseAudio devices, the speaker sink, the echo canceller, Silero VAD,
the turn controller, the session wiring, the phrase chunker, the history and the
transcript writer. Doubles: the LLM (scripted replies), the TTS (espeak-ng speech
instead of Qwen3-TTS, because the tiny random checkpoints make noise, not speech, and
the point is an echo that sounds like a voice) and the ASR (it returns the text the test
says the user is speaking, since no real ASR weights can be downloaded here).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from sisyphus.agent.bargein import BargeInPolicy
from sisyphus.agent.controller import TurnController
from sisyphus.agent.session import SessionParts, run_session
from sisyphus.audio.echo_control import with_echo_control
from sisyphus.audio.sink import SpeakerSink
from sisyphus.audio.source import MicSource
from sisyphus.config import AudioConfig, VadConfig
from sisyphus.llm.chunker import PhraseChunker
from sisyphus.llm.history import History
from sisyphus.transcript import TranscriptWriter
from sisyphus.vad.endpointer import Endpointer
from tests.agent.fakes import ScriptedLLM
from tests.support.speech import espeak

SPEAKER_RATE_HZ = 24_000
# Turns end on silence alone and no reply is prepared at pauses: the scripted LLM's replies
# then map one to one onto turns (semantic end of turn has its own tests).
VAD = VadConfig(turn_model="none", preempt_silence_ms=None)
CHUNK_SAMPLES = 1920  # 80 ms, one Qwen3-TTS codec frame


@lru_cache(maxsize=64)
def _spoken(text: str) -> np.ndarray:
    return espeak(text, SPEAKER_RATE_HZ)


class EspeakTTS:
    """Speaks each phrase with espeak-ng at 24 kHz, streamed in 80 ms chunks; honours `cancel`."""

    sample_rate_hz = SPEAKER_RATE_HZ

    def stream(self, text: str, voice: str, *, language=None, cancel=None) -> Iterator[np.ndarray]:
        audio = _spoken(text)
        for start in range(0, audio.size, CHUNK_SAMPLES):
            if cancel is not None and cancel.is_set():
                return
            yield audio[start : start + CHUNK_SAMPLES]


def warm_up(replies: list[str]) -> None:
    """Speak every phrase of the replies once now, so espeak-ng never runs while audio plays."""
    for reply in replies:
        chunker = PhraseChunker()
        for phrase in [*chunker.push(reply), *chunker.flush()]:
            _spoken(phrase)


def spoken_seconds(text: str) -> float:
    return _spoken(text).size / SPEAKER_RATE_HZ


class SayingASR:
    """Returns what the test says the user is speaking now (once), else no words."""

    def __init__(self) -> None:
        self.saying = ""
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def transcribe(self, samples_16k: np.ndarray) -> str:
        with self._lock:
            text, self.saying = self.saying, ""
        self.calls.append(text)
        return text


class Events:
    """A session consumer that keeps every event with its arrival time and lets the test wait."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, object]] = []
        self._changed = asyncio.Event()

    def handle(self, event: object) -> None:
        self.seen.append((time.monotonic(), event))
        self._changed.set()

    def of(self, kind: type) -> list:
        return [event for _, event in self.seen if isinstance(event, kind)]

    async def wait_for(self, predicate: Callable[[object], bool], timeout_s: float) -> object:
        """The first event since the start of the session that satisfies `predicate`."""
        deadline = time.monotonic() + timeout_s
        checked = 0
        while True:
            for _, event in self.seen[checked:]:
                if predicate(event):
                    return event
            checked = len(self.seen)
            self._changed.clear()
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise AssertionError(f"no such event within {timeout_s} s; last: {[e for _, e in self.seen[-6:]]}")
            try:
                await asyncio.wait_for(self._changed.wait(), left_s)
            except asyncio.TimeoutError:
                pass


@dataclass
class RoomSession:
    parts: SessionParts
    inputs: asyncio.Queue
    events: Events
    asr: SayingASR
    llm: ScriptedLLM
    history: History
    sink: SpeakerSink
    task: asyncio.Task | None = None
    transcript: Path | None = None
    extra: dict = field(default_factory=dict)

    async def start(self) -> None:
        self.task = asyncio.create_task(run_session(self.parts), name="room-session")
        await self.events.wait_for(lambda e: type(e).__name__ == "EchoStatus", 30)  # the microphone is open

    async def stop(self) -> None:
        self.inputs.put_nowait(None)
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)


def room_session(tmp: Path, replies: list[str], *, echo_cancellation: str = "on", max_speech_ms: float = 1500) -> RoomSession:
    """A session on the default devices (the room's spk and room.monitor); start it inside a loop."""
    events_queue: asyncio.Queue = asyncio.Queue()
    inputs: asyncio.Queue = asyncio.Queue()
    sink = SpeakerSink(None, latency=0.1)  # as tests/support/pulse.py advises: no underruns on a busy VM
    audio = AudioConfig(echo_cancellation=echo_cancellation)  # type: ignore[arg-type]
    source = with_echo_control(MicSource(None), sink, audio, events_queue)
    warm_up(replies)
    asr, llm, events = SayingASR(), ScriptedLLM(list(replies), delta_chars=12), Events()
    history = History("be brief", 20)
    controller = TurnController(
        asr=asr, llm=llm, tts=EspeakTTS(), sink=sink, history=history, make_chunker=PhraseChunker,
        events=events_queue, voice="espeak", backchannel=BargeInPolicy(max_speech_ms=max_speech_ms),
    )  # fmt: skip
    writer = TranscriptWriter(tmp / "sessions", {"voice": "espeak"})
    parts = SessionParts(
        controller=controller, source=source, sink=sink, endpointer=Endpointer(VAD, onset_events=True), events=events_queue,
        consumers=[events, writer], read_keyboard=False, inputs=inputs,
    )  # fmt: skip
    return RoomSession(parts, inputs, events, asr, llm, history, sink, transcript=writer.path)


def active_dbfs(samples: np.ndarray, rate_hz: int, *, within_db: float = 40.0) -> float:
    """Mean power, in dBFS, of the 10 ms frames within `within_db` of the loudest (the voiced part)."""
    hop = rate_hz // 100
    n = samples.size // hop
    power = np.mean(samples[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)
    loud = power[power > power.max() * 10 ** (-within_db / 10)]
    return float(10 * np.log10(np.mean(loud)))
