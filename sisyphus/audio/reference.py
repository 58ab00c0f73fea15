"""The echo canceller's far-end reference: what the speaker played, at the microphone's rate.

The sink hands every block it plays, silence included, to `FarEndReference.write` on its
own thread, with the session-clock time it handed the block to the device and whether
the device ran dry before it. Blocks are resampled 24 → 16 kHz by one streaming
resampler, so the reference is a single continuous signal on the speaker's timeline;
after an underrun the speaker played silence, the echo carries that gap, and so does
the reference (its length from the callbacks' times).

The echo canceller reads it back through a `ReferenceReader`, one 10 ms frame per
microphone frame, so the two streams stay in step and AEC3 sees a steady delay, the one
thing it needs: it finds the delay itself (up to about half a second) but cannot cancel
an echo that comes before its reference. The reader starts at the newest audio the
speaker had taken (WebRTC takes its reference the same way, as audio goes to the device),
which puts every echo after its reference by the output latency and the acoustic path.
From then on the signals decide, not the clocks: timestamps of PortAudio callbacks say
nothing about the input latency on many host APIs and wobble by tens of milliseconds on a
loaded machine. `DelayTracker` measures where the echo really lies behind the reference
(cross-correlation over the last two seconds of playback), and the reader moves when it
drifts out of the range AEC3 handles well (lost input blocks, devices whose clocks drift
apart); without playback there is no echo to misalign.
"""

from __future__ import annotations

import threading

import numpy as np
import soxr

from sisyphus.frames import MIC_RATE_HZ, SPEAKER_RATE_HZ

RING_S = 4.0  # far-end audio kept; older reads find silence
# The reader starts this far behind the newest audio the speaker took: one speaker block,
# so its 10 ms reads do not overtake the 20 ms blocks the speaker writes.
MARGIN_MS = 20.0
MAX_GAP_S = 1.0  # silence put in for one underrun, at most
MAX_LAG_MS = 600.0  # a reader further behind the newest audio than this starts over (a long input stall)
# While the speaker stalls, the reader runs on into audio not written yet and reads
# silence, which is what the speaker played; an underrun's gap then fills that stretch.
# A reader still ahead after the speaker took this much new audio missed a gap (an
# underrun the host API did not report) and starts over.
AHEAD_MS = 100.0
# Until the speaker first plays something, the reader keeps re-anchoring on the newest
# audio, so the first reply starts from an alignment the starting streams (a burst of
# input, a stalled first output block) did not skew. From then on it never jumps without
# cause: AEC3 takes seconds to recover from even a 20 ms jump of its reference.


class FarEndReference:
    """A thread-safe ring of what the speaker played, at `out_rate_hz`."""

    def __init__(self, in_rate_hz: int = SPEAKER_RATE_HZ, out_rate_hz: int = MIC_RATE_HZ, ring_s: float = RING_S) -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._ring = np.zeros(int(ring_s * out_rate_hz), dtype=np.float32)
        self._written = 0  # output samples written in total
        self._next_s: float | None = None  # when the block after the last one was due
        self._resampler = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality="HQ")
        self._lock = threading.Lock()
        self.gaps = 0  # underruns matched with silence

    def write(self, block: np.ndarray, handed_s: float, underflow: bool = False) -> None:
        """Sink thread: `block` (input rate, mono) went to the device at clock time `handed_s`.

        After an underflow the speaker played silence until this block; the reference
        gets as much silence as the block came late, so the echo's delay stays put.
        """
        handed_s = float(handed_s)
        late_s = handed_s - self._next_s if underflow and self._next_s is not None else 0.0
        gap = round(min(late_s, MAX_GAP_S) * self.in_rate_hz) if late_s > 0 else 0
        silence = self._resampler.resample_chunk(np.zeros(gap, dtype=np.float32)) if gap else None
        resampled = self._resampler.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))
        self._next_s = handed_s + len(block) / self.in_rate_hz
        with self._lock:
            if silence is not None:
                self._put(silence)
                self.gaps += 1
            self._put(resampled)

    def _put(self, samples: np.ndarray) -> None:
        size = self._ring.size
        samples = samples[-size:]
        at = self._written % size
        first = min(samples.size, size - at)
        self._ring[at : at + first] = samples[:first]
        self._ring[: samples.size - first] = samples[first:]
        self._written += samples.size

    def read(self, start: int, count: int) -> np.ndarray:
        """Output samples [start, start + count); what is not (or no longer) in the ring is silence."""
        out = np.zeros(count, dtype=np.float32)
        with self._lock:
            lo = max(start, self._written - self._ring.size, 0)
            hi = min(start + count, self._written)
            if hi > lo:
                out[lo - start : hi - start] = self._ring[np.arange(lo, hi) % self._ring.size]
        return out

    @property
    def written(self) -> int:
        with self._lock:
            return self._written


class ReferenceReader:
    """Reads the reference in step with the microphone, one frame per frame."""

    def __init__(self, reference: FarEndReference, *, margin_ms: float = MARGIN_MS, max_lag_ms: float = MAX_LAG_MS) -> None:
        self._reference = reference
        per_ms = reference.out_rate_hz / 1000
        self._margin = int(round(margin_ms * per_ms))
        self._max_lag = int(round(max_lag_ms * per_ms))
        self._ahead_limit = int(round(AHEAD_MS * per_ms))
        self._cursor: int | None = None
        self._ahead_since: int | None = None  # what had been written when the reader got ahead
        self._heard = False  # the speaker has played something
        self.restarts = 0  # the reader fell too far behind (or ran ahead) and started over
        self.moves = 0  # corrections from the measured delay

    def next_frame(self, count: int, backlog_s: float = 0.0) -> np.ndarray:
        """The next `count` samples of the reference.

        `backlog_s`: how long ago the microphone frame was captured (blocks queue up on a
        busy machine); an anchor on the newest audio goes back that far.
        """
        written = self._reference.written
        if not self._heard:
            self._cursor = written - self._margin - int(max(0.0, backlog_s) * self._reference.out_rate_hz)
        lag = None if self._cursor is None else written - self._cursor
        if lag is None or lag >= count:
            self._ahead_since = None
        elif self._ahead_since is None:
            self._ahead_since = written
        ran_on = self._ahead_since is not None and written - self._ahead_since >= self._ahead_limit
        if lag is None or lag > self._max_lag or ran_on:
            self.restarts += lag is not None
            self._cursor, self._ahead_since = written - self._margin, None
        frame = self._reference.read(self._cursor, count)
        self._cursor += count
        self._heard = self._heard or bool(frame.any())
        return frame

    def move(self, samples: int) -> None:
        """Read `samples` later in the reference from now on (earlier when negative)."""
        if self._cursor is not None:
            newest = self._reference.written - self._margin
            self._cursor = min(self._cursor + samples, newest)
            self.moves += 1


class DelayTracker:
    """Where the echo lies behind the reference, from the signals: a cross-correlation peak.

    Both streams are averaged down to 4 kHz (speech's echo is mostly below 2 kHz) and
    correlated every `every_s` over the last `window_s`, if the reference played enough.
    """

    DECIMATE = 4

    def __init__(self, rate_hz: int = MIC_RATE_HZ, window_s: float = 2.0, every_s: float = 0.5,
                 max_delay_s: float = 0.6, min_correlation: float = 0.15) -> None:  # fmt: skip
        self._rate_hz = rate_hz // self.DECIMATE
        self._size = int(window_s * self._rate_hz)
        self._every = int(every_s * self._rate_hz)
        self._max_lag = int(max_delay_s * self._rate_hz)
        self._min_correlation = min_correlation
        self._near = np.zeros(self._size, dtype=np.float32)  # rings of decimated audio
        self._far = np.zeros(self._size, dtype=np.float32)
        self._at = 0  # next write position in the rings
        self._filled = 0
        self._since = 0

    def reset(self) -> None:
        """Forget the window (after the reader moved: the old alignment no longer holds)."""
        self._near[:] = 0.0
        self._far[:] = 0.0
        self._filled = self._since = 0

    def add(self, near: np.ndarray, far: np.ndarray) -> float | None:
        """Take one frame of each; every `every_s` of audio, the echo's delay in ms (None: unclear)."""
        n = near.size // self.DECIMATE
        at = np.arange(self._at, self._at + n) % self._size
        self._near[at] = near[: n * self.DECIMATE].reshape(n, self.DECIMATE).mean(axis=1)
        self._far[at] = far[: n * self.DECIMATE].reshape(n, self.DECIMATE).mean(axis=1)
        self._at = (self._at + n) % self._size
        self._filled = min(self._size, self._filled + n)
        self._since += n
        if self._since < self._every or self._filled < self._size:
            return None
        self._since = 0
        return self._estimate(np.roll(self._near, -self._at), np.roll(self._far, -self._at))

    def _estimate(self, near: np.ndarray, far: np.ndarray) -> float | None:
        if float(np.mean(far**2)) < 1e-6 or float(np.mean(near**2)) < 1e-8:
            return None  # no playback, or nothing heard: no echo to place
        size = 2 * self._size
        corr = np.fft.irfft(np.fft.rfft(near, size) * np.conj(np.fft.rfft(far, size)), size)
        lags = np.r_[np.arange(self._max_lag + 1), np.arange(-self._max_lag, 0)]
        values = np.r_[corr[: self._max_lag + 1], corr[-self._max_lag :]]
        best = int(np.argmax(np.abs(values)))
        strength = abs(values[best]) / (np.linalg.norm(near) * np.linalg.norm(far) + 1e-12)
        if strength < self._min_correlation:
            return None
        return lags[best] * 1000.0 / self._rate_hz
