"""Audible first audio: when a listener first hears the reply, not when its first bytes exist.

The first chunk of a streamed phrase is often near-silent (the first 80 ms codec frame of
Qwen3-TTS usually is), so time to first chunk flatters the wait. Audible first audio is
the time from the phrase arriving to the first sample above AUDIBLE_DBFS (−50 dBFS of full
scale) as a speaker would play it: playback starts with the first chunk and runs on
without gaps, except that a chunk arriving after the previous one has finished playing
starts when it arrives (an underrun). So a loud sample 100 ms into a first chunk that
came 30 ms after the phrase is heard at 130 ms.

Pure arithmetic over chunks and their arrival times: no clock of its own, no audio
device, numpy only, so the controller, `sisyphus bench` and the benchmarks share it.
"""

from __future__ import annotations

import numpy as np

AUDIBLE_DBFS = -50.0  # a sample this far below full scale (1.0) or quieter is not heard


def first_audible(samples: np.ndarray, threshold_dbfs: float = AUDIBLE_DBFS) -> int | None:
    """Index of the first sample whose magnitude is above `threshold_dbfs`; None if none is."""
    level = 10.0 ** (threshold_dbfs / 20.0)
    loud = np.flatnonzero(np.abs(np.asarray(samples, dtype=np.float32).reshape(-1)) > level)
    return int(loud[0]) if loud.size else None


class AudibleTimer:
    """Follows one reply's chunks; `audible_s` is set once the first audible sample plays.

    `start_s` is when the phrase arrived (on the caller's clock); `add` takes each chunk
    with the time it arrived on the same clock.
    """

    def __init__(self, rate_hz: int, start_s: float, threshold_dbfs: float = AUDIBLE_DBFS) -> None:
        self.rate_hz = rate_hz
        self.start_s = start_s
        self.threshold_dbfs = threshold_dbfs
        self.audible_s: float | None = None  # seconds after start_s; None while nothing was heard
        self._play_end_s: float | None = None  # when the audio added so far stops playing

    def add(self, chunk: np.ndarray, arrived_s: float) -> float | None:
        """Account for one chunk; returns `audible_s` (None while still silent)."""
        size = int(np.asarray(chunk).size)
        if size == 0:
            return self.audible_s
        plays_at = arrived_s if self._play_end_s is None else max(arrived_s, self._play_end_s)
        self._play_end_s = plays_at + size / self.rate_hz
        if self.audible_s is None:
            index = first_audible(chunk, self.threshold_dbfs)
            if index is not None:
                self.audible_s = plays_at + index / self.rate_hz - self.start_s
        return self.audible_s

    @property
    def audible_ms(self) -> float | None:
        return None if self.audible_s is None else self.audible_s * 1000.0
