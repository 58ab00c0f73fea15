"""Small hand-written stand-ins for the engines, so the turn controller is tested alone.

They follow the engine protocols (no inheritance, no mocks): a scripted LLM stream, a
scripted recogniser, a TTS that turns each word into a short tone, and a speaker whose
playback position the test moves by hand (and which holds audio while paused).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import numpy as np

RATE_HZ = 24_000
SAMPLES_PER_WORD = 2400  # 100 ms of tone per word


class ScriptedLLM:
    def __init__(self, replies: list[str | Exception], delta_chars: int = 5) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict[str, str]]] = []
        self.delta_chars = delta_chars
        self.gate: asyncio.Event | None = None  # if set, the stream waits on it mid-reply

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        self.requests.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        for i in range(0, len(reply), self.delta_chars):
            if self.gate is not None and i > 0:
                await self.gate.wait()
            yield reply[i : i + self.delta_chars]
            await asyncio.sleep(0)


class SentenceChunker:
    """Cuts at '.', which is all these tests need."""

    def __init__(self) -> None:
        self.buffer = ""

    def push(self, delta: str) -> list[str]:
        self.buffer += delta
        out = []
        while "." in self.buffer:
            head, self.buffer = self.buffer.split(".", 1)
            out.append(head.strip() + ".")
        return out

    def flush(self) -> list[str]:
        rest, self.buffer = self.buffer.strip(), ""
        return [rest] if rest else []


class ToneTTS:
    """One 100 ms tone chunk per word; records phrases and honours `cancel`."""

    sample_rate_hz = RATE_HZ

    def __init__(self) -> None:
        self.phrases: list[tuple[str, str]] = []
        self.cancelled = threading.Event()

    def stream(self, text: str, voice: str, *, language=None, cancel=None) -> Iterator[np.ndarray]:
        self.phrases.append((voice, text))
        for _ in text.split():
            if cancel is not None and cancel.is_set():
                self.cancelled.set()
                return
            t = np.arange(SAMPLES_PER_WORD) / RATE_HZ
            yield (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


class ScriptedASR:
    def __init__(self, texts: list[str]) -> None:
        self.texts = list(texts)
        self.calls = 0

    def transcribe(self, samples_16k: np.ndarray) -> str:
        self.calls += 1
        return self.texts.pop(0)


class ManualSink:
    """A speaker that plays only as far as the test says (or everything, if auto)."""

    sample_rate_hz = RATE_HZ

    def __init__(self, auto_play: bool = True, clock=None) -> None:
        self.auto_play = auto_play
        self.written: dict[int, int] = {}
        self.played: dict[int, int] = {}
        self.first_sound: dict[int, float] = {}
        self.flushes = 0
        self.paused = False
        self.sound_end: dict[int, float] = {}  # what last_sound_end_s reports, set by the test
        self.log: list[str] = []
        self._clock = clock
        self._progress = asyncio.Event()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def write(self, turn_id: int, samples: np.ndarray) -> None:
        self.written[turn_id] = self.written.get(turn_id, 0) + len(samples)
        self.log.append(f"write {turn_id}")
        if self.auto_play and not self.paused:
            self.play(turn_id, len(samples))

    def play(self, turn_id: int, samples: int) -> None:
        if turn_id not in self.first_sound and samples:
            self.first_sound[turn_id] = self._clock() if self._clock else 0.0
        self.played[turn_id] = min(self.written.get(turn_id, 0), self.played.get(turn_id, 0) + samples)
        self._progress.set()

    def flush(self) -> None:
        self.flushes += 1
        self.paused = False
        self.log.append("flush")
        self.written = dict(self.played)

    def pause(self) -> None:
        self.log.append("pause")
        self.paused = True

    def resume(self) -> None:
        self.log.append("resume")
        self.paused = False
        if self.auto_play:  # what was held plays now
            for turn_id, written in list(self.written.items()):
                self.play(turn_id, written - self.played.get(turn_id, 0))

    def last_sound_end_s(self, turn_id: int) -> float | None:
        return self.sound_end.get(turn_id)

    def played_samples(self, turn_id: int) -> int:
        return self.played.get(turn_id, 0)

    def first_sound_s(self, turn_id: int) -> float | None:
        return self.first_sound.get(turn_id)

    async def drained(self, turn_id: int) -> None:
        while self.played.get(turn_id, 0) < self.written.get(turn_id, 0):
            self._progress.clear()
            await self._progress.wait()
