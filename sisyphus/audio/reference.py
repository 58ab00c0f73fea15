"""The echo canceller's far-end reference: what the speaker played, at the microphone's rate.

The sink hands every block it plays, silence included, to `FarEndReference.write` on its
own thread, with the session-clock time it handed the block to the device and whether
the device ran dry before it. Blocks are resampled 24 → 16 kHz by one streaming
resampler, so the reference is a single continuous signal, placed on the speaker's
timeline: one block after another from the first, starting over only where the device
ran dry (an underrun it reported gets the silence it played instead).

The echo canceller reads it by time: for each 10 ms microphone frame, what the speaker
played when the frame was captured (`ReferenceReader`), with capture times from a steady
microphone timeline (`CaptureClock`). The echo then lies behind its reference by the
output latency and the acoustic path, a steady delay, the one thing AEC3 needs (it finds
the delay itself, up to about half a second, but cannot cancel an echo that comes before
its reference). Reading by time and not by counting frames matters on a loaded machine:
there the speaker's callbacks come in bursts of up to 100 ms and the microphone's blocks
queue up behind a busy event loop, and a reader that counted frames ran ahead of what
the speaker had written, read silence where the reply played, and started over, each
time a jump of its reference that AEC3 takes seconds to recover from (the echo leaked
through and the reply interrupted itself). Raw callback times wobble by tens of
milliseconds, so both timelines keep to the sample counts and only start over on a
real stall or loss. `DelayTracker` measures where the echo really lies behind the
reference (cross-correlation over the last two seconds of playback), and the reader
moves when it drifts out of the range AEC3 handles well (devices whose clocks drift
apart); without playback there is no echo to misalign.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque

import numpy as np
import soxr

from sisyphus.frames import MIC_RATE_HZ, SPEAKER_RATE_HZ

RING_S = 4.0  # far-end audio kept; older reads find silence
MAX_GAP_S = 1.0  # silence put in for one underrun, at most
# A speaker callback this much later than the end of the audio before it found the
# device dry even if the host API did not say so: the timeline starts over at it.
STALL_S = 0.06
# A microphone timeline this far behind every block's capture time for this long lost
# samples (an overflow, dropped blocks), not merely delivered them late: it starts over.
LATE_S, LATE_FOR_S = 0.05, 1.0
# A block stamped earlier than the timeline by less than this leaves it where it is:
# every move is a jump of the reference, and AEC3 copes far better with a steady
# misalignment of a few milliseconds (it finds the delay) than with frequent small jumps.
EARLY_S = 0.01


class FarEndReference:
    """A thread-safe ring of what the speaker played, at `out_rate_hz`, on the speaker's timeline.

    The timeline says when each sample went to the device: blocks follow each other
    without a gap (a burst of callbacks that fills the device's buffer is played one
    block after another, not all at once), and starts over at a block that came after
    the device ran dry. `read_at` reads it by clock time.
    """

    def __init__(self, in_rate_hz: int = SPEAKER_RATE_HZ, out_rate_hz: int = MIC_RATE_HZ, ring_s: float = RING_S) -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._ring = np.zeros(int(ring_s * out_rate_hz), dtype=np.float32)
        self._written = 0  # output samples written in total
        self._next_s: float | None = None  # when the block after the last one was due
        self._resampler = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality="HQ")
        self._lock = threading.Lock()
        self._segments: list[tuple[int, float]] = []  # (first sample, its clock time) of each unbroken stretch
        self.gaps = 0  # underruns matched with silence
        self.stalls = 0  # callbacks so late that the timeline started over

    def write(self, block: np.ndarray, handed_s: float, underflow: bool = False) -> None:
        """Sink thread: `block` (input rate, mono) went to the device at clock time `handed_s`.

        After an underflow the speaker played silence until this block; the reference
        gets as much silence as the block came late, so the echo's delay stays put.
        """
        handed_s = float(handed_s)
        late_s = handed_s - self._next_s if self._next_s is not None else 0.0
        gap = round(min(late_s, MAX_GAP_S) * self.in_rate_hz) if underflow and late_s > 0 else 0
        silence = self._resampler.resample_chunk(np.zeros(gap, dtype=np.float32)) if gap else None
        resampled = self._resampler.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))
        stalled = self._next_s is not None and not gap and late_s > STALL_S
        restart = self._next_s is None or stalled
        starts_s = handed_s if restart else self._next_s + gap / self.in_rate_hz  # type: ignore[operator]
        self._next_s = starts_s + len(block) / self.in_rate_hz
        with self._lock:
            if silence is not None:
                self._put(silence)
                self.gaps += 1
            if restart:
                self.stalls += stalled
                self._segments.append((self._written, starts_s))
                del self._segments[:-64]
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
            self._copy(out, start)
        return out

    def _copy(self, out: np.ndarray, start: int) -> None:
        lo = max(start, self._written - self._ring.size, 0)
        hi = min(start + out.size, self._written)
        if hi > lo:
            out[lo - start : hi - start] = self._ring[np.arange(lo, hi) % self._ring.size]

    def read_at(self, t_s: float, count: int) -> np.ndarray:
        """`count` samples of what went to the speaker from clock time `t_s` on (silence where nothing did)."""
        out = np.zeros(count, dtype=np.float32)
        with self._lock:
            if not self._segments:
                return out
            times = [time_s for _, time_s in self._segments]
            k = max(bisect.bisect_right(times, t_s) - 1, 0)
            first, first_s = self._segments[k]
            start = first + int(round((t_s - first_s) * self.out_rate_hz))
            if k + 1 < len(self._segments):  # a stall: the stretch ends where the next one begins
                end, next_s = self._segments[k + 1]
                self._copy(out[: max(0, min(count, end - start))], start)
                at = int(round((next_s - t_s) * self.out_rate_hz))
                if at < count:
                    self._copy(out[max(at, 0) :], end + max(0, -at))
            else:
                self._copy(out, start)
        return out

    @property
    def written(self) -> int:
        with self._lock:
            return self._written


class CaptureClock:
    """When each microphone sample was captured, on a steady timeline.

    PortAudio stamps blocks on delivery, and a busy machine delivers them late and in
    bursts; sample n is `origin + n / rate` with about the earliest origin the blocks
    allow (no block arrives before it was captured; within `EARLY_S`, so that jitter
    does not move it). Stamps can also disagree with the sample
    count for good (lost samples; a host API whose first blocks report a latency that
    later ones do not): when the earliest origin over the last `LATE_FOR_S` is
    `LATE_S` later than the one in use, the timeline moves up to it.
    """

    def __init__(self, rate_hz: int = MIC_RATE_HZ) -> None:
        self._rate_hz = rate_hz
        self._count = 0
        self._origin_s: float | None = None
        self._recent: deque[tuple[int, float]] = deque()  # (sample count, origin) of the last blocks
        self.restarts = 0

    def add(self, samples: int, t_last_s: float) -> None:
        """A block of `samples` whose last sample was stamped `t_last_s`."""
        self._count += samples
        origin_s = float(t_last_s) - (self._count - 1) / self._rate_hz
        self._recent.append((self._count, origin_s))
        while self._count - self._recent[0][0] > LATE_FOR_S * self._rate_hz:
            self._recent.popleft()
        if self._origin_s is None:
            self._origin_s = origin_s
            return
        if origin_s < self._origin_s - EARLY_S:  # the timeline was late: move it back, as a jump
            self._origin_s = origin_s
            self._recent.clear()
            self.restarts += 1
            return
        earliest_s = min(o for _, o in self._recent)
        if earliest_s - self._origin_s > LATE_S and self._count - self._recent[0][0] >= (LATE_FOR_S * self._rate_hz) * 0.9:
            self._origin_s = earliest_s
            self._recent.clear()
            self.restarts += 1

    def time_of(self, sample: int) -> float:
        """Capture time of sample `sample` (counted from the first one added)."""
        return (self._origin_s or 0.0) + sample / self._rate_hz


class ReferenceReader:
    """Reads the reference for each microphone frame: what the speaker played when the frame was captured.

    The echo in a frame comes from audio played before it was captured, so it lies
    behind its reference by the output latency and the acoustic path, which AEC3 finds.
    Both timelines are steady, so a loaded machine that delivers blocks late and in
    bursts does not move one against the other.
    """

    def __init__(self, reference: FarEndReference) -> None:
        self._reference = reference
        self._shift_s = 0.0
        self.moves = 0  # corrections from the measured delay

    @property
    def restarts(self) -> int:
        """Times the speaker's timeline started over after a stall it did not report."""
        return self._reference.stalls

    def next_frame(self, count: int, t_s: float) -> np.ndarray:
        """`count` samples of the reference for the microphone frame captured from `t_s` on."""
        return self._reference.read_at(t_s + self._shift_s, count)

    def move(self, samples: int) -> None:
        """Read `samples` later in the reference from now on (earlier when negative)."""
        self._shift_s += samples / self._reference.out_rate_hz
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
