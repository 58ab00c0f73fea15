"""The queue of reply audio between the event loop and whatever plays it.

The loop writes turn-tagged chunks; a consumer (PortAudio's callback thread for the
speaker, a clock-driven task for a WAV file) pulls fixed-size blocks, getting silence when
nothing is queued (or while playback is paused). Per-turn counts of written, played and dropped samples are what let
the turn controller keep only the words that were heard after a barge-in. Pulling never
allocates more than one block and never waits for the loop, so it is safe in a realtime
callback.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _TurnCounts:
    written: int = 0
    played: int = 0
    dropped: int = 0
    first_sound_s: float | None = None
    # (clock time the run starts playing, samples): contiguous runs handed to the device
    runs: list[list[float]] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.written - self.played - self.dropped


class PlaybackBuffer:
    """Thread-safe FIFO of (turn_id, samples) with per-turn accounting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self._offset = 0  # samples of the head chunk already played
        self._turns: dict[int, _TurnCounts] = {}
        self._paused = False

    def push(self, turn_id: int, samples: np.ndarray) -> None:
        block = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if block.size == 0:
            return
        with self._lock:
            self._chunks.append((turn_id, block))
            self._turns.setdefault(turn_id, _TurnCounts()).written += block.size

    def pull(self, out: np.ndarray, block_start_s: float, rate_hz: int) -> list[int]:
        """Fill `out` (1-D float32) with queued audio, zero the rest.

        `block_start_s` is the clock time the first sample of `out` reaches the device; it
        stamps each turn's first sound. Returns the turns whose queued audio ran out
        during this block, so the caller can wake whoever awaits their drain.
        """
        filled = 0
        drained: list[int] = []
        with self._lock:
            while filled < out.size and self._chunks and not self._paused:
                turn_id, chunk = self._chunks[0]
                take = min(out.size - filled, chunk.size - self._offset)
                out[filled : filled + take] = chunk[self._offset : self._offset + take]
                counts = self._turns[turn_id]
                start_s = block_start_s + filled / rate_hz
                if counts.first_sound_s is None:
                    counts.first_sound_s = start_s
                _extend_runs(counts.runs, start_s, take, rate_hz)
                counts.played += take
                filled += take
                self._offset += take
                if self._offset == chunk.size:
                    self._chunks.popleft()
                    self._offset = 0
                    if counts.pending == 0:
                        drained.append(turn_id)
        out[filled:] = 0.0
        return drained

    def pause(self) -> None:
        """Hold the queued audio: pulls give silence until `resume` (or `flush`), nothing is lost."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        """Play on from the sample where `pause` stopped."""
        with self._lock:
            self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def flush(self) -> list[int]:
        """Drop everything queued (a pause ends with it); returns the turns that lost audio."""
        with self._lock:
            self._paused = False
            touched: list[int] = []
            for index, (turn_id, chunk) in enumerate(self._chunks):
                lost = chunk.size - (self._offset if index == 0 else 0)
                self._turns[turn_id].dropped += lost
                if turn_id not in touched:
                    touched.append(turn_id)
            self._chunks.clear()
            self._offset = 0
            return touched

    def pending(self, turn_id: int) -> int:
        with self._lock:
            counts = self._turns.get(turn_id)
            return counts.pending if counts else 0

    def busy(self) -> bool:
        with self._lock:
            return bool(self._chunks)

    def played(self, turn_id: int, now_s: float | None = None, rate_hz: int = 0) -> int:
        """Samples of the turn handed to the device; with `now_s`, only those already heard.

        The device plays a block some latency after taking it, so after a barge-in the
        samples it took but had not yet played must not count as heard.
        """
        with self._lock:
            counts = self._turns.get(turn_id)
            if counts is None:
                return 0
            if now_s is None:
                return counts.played
            heard = 0
            for start_s, samples in counts.runs:
                heard += min(int(samples), max(0, int((now_s - start_s) * rate_hz)))
            return heard

    def last_sound_end_s(self, turn_id: int, rate_hz: int) -> float | None:
        """Clock time the last sample handed over so far stops playing."""
        with self._lock:
            counts = self._turns.get(turn_id)
            if counts is None or not counts.runs:
                return None
            start_s, samples = counts.runs[-1]
            return start_s + samples / rate_hz

    def first_sound_s(self, turn_id: int) -> float | None:
        with self._lock:
            counts = self._turns.get(turn_id)
            return counts.first_sound_s if counts else None


# Callback timestamps jitter by a few ms; runs closer than this are one run.
_MERGE_TOLERANCE_S = 0.02


def _extend_runs(runs: list[list[float]], start_s: float, samples: int, rate_hz: int) -> None:
    """Merge with the previous run when contiguous, so a turn keeps a handful of runs."""
    if runs:
        last = runs[-1]
        if abs(last[0] + last[1] / rate_hz - start_s) < _MERGE_TOLERANCE_S:
            last[1] += samples
            return
    runs.append([start_s, float(samples)])
