"""Echo cancellation for open speakers: WebRTC's audio processing on the microphone, before VAD.

`EchoCanceller` runs WebRTC's AudioProcessing module (AEC3 echo canceller, noise
suppression, high-pass filter; the `pywebrtc-audio` binding) on 10 ms frames of the
16 kHz microphone signal. The far-end reference is exactly what the speaker played, read
from a `FarEndReference` at the time each microphone frame was captured, so the canceller
sees the reply before its echo arrives and AEC3 only has to find the delay; a tracker
measures that delay too and keeps it in range (see sisyphus/audio/reference.py). Without
the canceller, an open speaker's reply reaches the VAD as speech and the assistant
interrupts itself.

`EchoMeter` says how well it works: after each stretch of playback it reports the echo
reduction, the median over 100 ms windows (while the reply played) of microphone level
over cleaned level. A median, so a user talking over part of the reply does not drag the
figure down. Windows where the microphone heard next to nothing (headphones) are skipped:
then there was no echo to remove.

Nothing here touches the event loop or PortAudio: `process` runs on one worker thread.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sisyphus.audio.reference import CaptureClock, DelayTracker, FarEndReference, ReferenceReader
from sisyphus.errors import AudioDeviceError
from sisyphus.frames import MIC_RATE_HZ, mono_samples

log = logging.getLogger(__name__)

FRAME_SAMPLES = MIC_RATE_HZ // 100  # WebRTC processes 10 ms frames
# AEC3 is told to expect about this much delay (it measures the real one itself). When
# the measured delay leaves [MIN_DELAY_MS, MAX_DELAY_MS], the reference is moved so that
# the echo lies TARGET_DELAY_MS behind it again.
DELAY_HINT_MS = TARGET_DELAY_MS = 80
MIN_DELAY_MS, MAX_DELAY_MS = 20.0, 400.0
AGREE_MS = 25.0  # two delay estimates this close are one finding
# AEC3 starts cold and needs about a second of playback to converge, and as long again
# after its reference jumps; meanwhile the echo leaks through loud enough for the VAD to
# call it speech. For that much playback the cleaned signal is held 40 dB down: the
# assistant cannot be interrupted in the first moments of its first reply, rather than
# interrupting itself. The echo comes after its reference, so the hold lasts as long
# after each stretch of reference (pauses between phrases included) as an echo can lag.
CONVERGE_S = 1.5
CONVERGING_GAIN = 0.01
ECHO_TAIL_S = 0.5
WINDOW_FRAMES = 10  # 100 ms windows for the echo-reduction figure
FAR_ACTIVE_DBFS = -50.0  # the reference counts as playing above this level
ECHO_FLOOR_DBFS = -60.0  # quieter microphone windows hold no echo worth measuring
STRETCH_END_S = 0.5  # this much reference silence ends a stretch of playback
MAX_REDUCTION_DB = 60.0  # a window cleaned to digital silence counts as this

INSTALL_HINT = "pip install pywebrtc-audio (Linux, macOS and Windows wheels), or set audio.echo_cancellation: off"


@dataclass(frozen=True)
class EchoReport:
    """How much echo the canceller removed over one stretch of playback."""

    echo_reduction_db: float | None  # None: the microphone heard no echo to remove
    echo_dbfs: float | None  # level of what the microphone heard while the reply played
    seconds: float  # playback the figure covers


def _dbfs(energy: float, samples: int) -> float:
    return 10 * math.log10(max(energy / max(samples, 1), 1e-12))


class EchoMeter:
    """Echo reduction per stretch of playback, from (microphone, cleaned, reference) frames."""

    def __init__(self) -> None:
        self._window = [0.0, 0.0, 0]  # microphone energy, cleaned energy, far-active frames
        self._frames_in_window = 0
        self._reductions: list[float] = []
        self._heard_energy = 0.0
        self._active_frames = 0
        self._quiet_frames = 0
        self.reports: list[EchoReport] = []

    def add(self, near: np.ndarray, cleaned: np.ndarray, far: np.ndarray) -> None:
        far_active = _dbfs(float(np.dot(far, far)), far.size) > FAR_ACTIVE_DBFS
        near_energy = float(np.dot(near, near))
        if far_active:
            self._active_frames += 1
            self._quiet_frames = 0
            self._heard_energy += near_energy
            self._window[0] += near_energy
            self._window[1] += float(np.dot(cleaned, cleaned))
            self._window[2] += 1
        elif self._active_frames:
            self._quiet_frames += 1
        self._frames_in_window += 1
        if self._frames_in_window == WINDOW_FRAMES:
            self._close_window()
        if self._quiet_frames * FRAME_SAMPLES >= STRETCH_END_S * MIC_RATE_HZ:
            self._close_stretch()

    def _close_window(self) -> None:
        near, cleaned, active = self._window
        if active == WINDOW_FRAMES and _dbfs(near, active * FRAME_SAMPLES) > ECHO_FLOOR_DBFS:
            ratio_db = 10 * math.log10(near / cleaned) if cleaned > 0 else MAX_REDUCTION_DB
            self._reductions.append(min(ratio_db, MAX_REDUCTION_DB))
        self._window = [0.0, 0.0, 0]
        self._frames_in_window = 0

    def _close_stretch(self) -> None:
        seconds = self._active_frames * FRAME_SAMPLES / MIC_RATE_HZ
        reduction = float(np.median(self._reductions)) if self._reductions else None
        heard = _dbfs(self._heard_energy, self._active_frames * FRAME_SAMPLES)
        self.reports.append(EchoReport(reduction, heard if reduction is not None else None, seconds))
        self._reductions = []
        self._heard_energy = 0.0
        self._active_frames = self._quiet_frames = 0

    def take(self) -> list[EchoReport]:
        reports, self.reports = self.reports, []
        return reports


def make_processor(*, echo_cancellation: bool, noise_suppression: bool, high_pass_filter: bool, delay_ms: int) -> Any:
    """WebRTC's AudioProcessing for 16 kHz mono; a clear error when the binding is missing."""
    try:
        from pywebrtc_audio import AudioProcessor
    except ImportError as exc:
        raise AudioDeviceError(f"echo cancellation needs the pywebrtc-audio package ({exc})", INSTALL_HINT) from exc
    return AudioProcessor(
        sample_rate=MIC_RATE_HZ, num_channels=1, echo_cancellation=echo_cancellation,
        noise_suppression=noise_suppression, high_pass_filter=high_pass_filter, auto_gain_control=False,
        stream_delay_ms=delay_ms,
    )  # fmt: skip


class EchoCanceller:
    """Cleans microphone audio of the speaker's echo (and of noise); not thread-safe, use one thread."""

    def __init__(
        self,
        reference: FarEndReference | None,
        *,
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        high_pass_filter: bool = True,
        processor: Any = None,
        converge_s: float = CONVERGE_S,
    ) -> None:
        if echo_cancellation and reference is None:
            raise ValueError("echo cancellation needs the speaker's reference")
        self.echo_cancellation = echo_cancellation
        self.noise_suppression = noise_suppression
        self.high_pass_filter = high_pass_filter
        self._reader = ReferenceReader(reference) if echo_cancellation and reference else None
        self._tracker = DelayTracker()
        self.delay_ms: float | None = None  # where the echo was last found behind the reference
        self._processor = processor or make_processor(
            echo_cancellation=echo_cancellation, noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter, delay_ms=DELAY_HINT_MS,
        )  # fmt: skip
        self._pending = np.zeros(0, dtype=np.float32)
        self._capture = CaptureClock()  # when each microphone sample was captured
        self._converge_frames = int(converge_s * MIC_RATE_HZ / FRAME_SAMPLES)
        self._converging = self._converge_frames  # far-active frames left to hold down
        self._tail_frames = int(ECHO_TAIL_S * MIC_RATE_HZ / FRAME_SAMPLES)
        self._since_far = self._tail_frames  # frames since the reference last played
        self._jumps = 0  # the reader's realignments seen so far
        self.meter = EchoMeter()
        self.frames = 0

    def describe(self) -> str:
        parts = ["AEC3 echo canceller" if self.echo_cancellation else ""]
        parts += ["noise suppression" if self.noise_suppression else "", "high-pass filter" if self.high_pass_filter else ""]
        return ", ".join(p for p in parts if p)

    def process(self, samples: np.ndarray, t_s: float) -> tuple[np.ndarray, float]:
        """Clean a block of 16 kHz audio whose last sample was captured at `t_s`.

        Whole 10 ms frames are processed; the rest waits for the next block, so the
        result (and the time of its last sample, returned with it) lags by under 10 ms.
        """
        block = mono_samples(samples).astype(np.float32, copy=False)
        audio = np.concatenate([self._pending, block]) if self._pending.size else block
        n_frames = audio.size // FRAME_SAMPLES
        first_s = t_s - (audio.size - 1) / MIC_RATE_HZ  # capture time of audio[0]
        out = np.empty(n_frames * FRAME_SAMPLES, dtype=np.float32)
        self._capture.add(block.size, t_s)
        for index in range(n_frames):
            frame = audio[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
            captured_s = self._capture.time_of((self.frames + index) * FRAME_SAMPLES)
            out[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES] = self._frame(np.ascontiguousarray(frame), captured_s)
        self._pending = audio[n_frames * FRAME_SAMPLES :].copy()
        self.frames += n_frames
        return out, first_s + (out.size - 1) / MIC_RATE_HZ

    def _frame(self, near: np.ndarray, captured_s: float) -> np.ndarray:
        if self._reader is None:
            return self._processor.process(near)
        far = self._reader.next_frame(FRAME_SAMPLES, captured_s)
        cleaned = self._processor.process(near, far)
        self.meter.add(near, cleaned, far)  # the canceller's own figure, before any holding down
        if self.realignments != self._jumps:  # a new alignment: AEC3 and the tracker start again
            self._jumps = self.realignments
            self._converging = self._converge_frames
            self._tracker.reset()
        self._since_far = 0 if float(np.dot(far, far)) > 0.0 else self._since_far + 1
        if self._converging > 0 and self._since_far < self._tail_frames:
            self._converging -= self._since_far == 0
            cleaned = cleaned * CONVERGING_GAIN
        delay_ms = self._tracker.add(near, far)
        if delay_ms is not None:
            self._realign_if_needed(delay_ms)
        return cleaned

    def _realign_if_needed(self, delay_ms: float) -> None:
        """Move the reference when two estimates in a row agree that the echo is out of range.

        A move is a jump AEC3 needs seconds to recover from, so one stray estimate (the
        user talking, a reverberant room smearing the peak) is never enough.
        """
        previous, self.delay_ms = self.delay_ms, delay_ms
        out_of_range = not MIN_DELAY_MS <= delay_ms <= MAX_DELAY_MS
        if not out_of_range or previous is None or abs(previous - delay_ms) > AGREE_MS:
            return
        log.info("echo found %.0f ms behind its reference; realigning to %d ms", delay_ms, TARGET_DELAY_MS)
        assert self._reader is not None
        self._reader.move(int((TARGET_DELAY_MS - delay_ms) * MIC_RATE_HZ / 1000))
        self._tracker.reset()
        self.delay_ms = None

    @property
    def realignments(self) -> int:
        """How often the reference was moved (by the measured delay, or after a stall or lost input)."""
        return 0 if self._reader is None else self._reader.moves + self._reader.restarts + self._capture.restarts
