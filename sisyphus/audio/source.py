"""Where the user's audio comes from: the microphone (PortAudio) or an `--input` file.

Both are async context managers and async iterators of 16 kHz mono `AudioBlock`s whose
`t_s` is the session-clock time of the block's last sample. The microphone callback runs
on PortAudio's thread and only copies the block and hands it to the loop; a full queue
drops (and counts) the block rather than blocking the audio thread. A file is decoded,
mixed to mono and resampled up front, then released block by block at the pace a
microphone would deliver it, followed by a stretch of silence so the last utterance can
end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import soxr

from sisyphus.audio.devices import close_stream, describe_device, resolve_device, start_stream
from sisyphus.errors import AudioDeviceError, AudioInputError
from sisyphus.frames import MIC_RATE_HZ, AudioBlock

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]

# A float file louder than this (12 dB over full scale) is damaged, not just hot.
MAX_PEAK = 4.0
_CONVERT_HINT = "use a WAV, FLAC, OGG or MP3 file (convert with: ffmpeg -i IN -ar 16000 -ac 1 OUT.wav)"


class AudioSource(Protocol):
    dropped_blocks: int

    async def __aenter__(self) -> AudioSource: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def __aiter__(self) -> AsyncIterator[AudioBlock]: ...


def probe_audio(path: str | Path) -> Any:
    """Cheap up-front check (header only) so a bad file fails before models load."""
    p = _existing_file(path)
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioInputError(f"{p} is not an audio file libsndfile can read ({_reason(exc)})", _CONVERT_HINT) from exc
    if info.frames == 0 or info.samplerate <= 0:
        raise AudioInputError(f"audio file {p} holds no samples", "record or pick a file with speech in it")
    return info


def load_audio(path: str | Path, target_rate_hz: int) -> np.ndarray:
    """Decode any libsndfile format, mix to mono, resample: float32 in [-1, 1].

    Shared by `--input` and voice cloning so both accept and refuse the same files.
    """
    p = _existing_file(path)
    try:
        data, rate_hz = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioInputError(f"{p} is not an audio file libsndfile can decode ({_reason(exc)})", _CONVERT_HINT) from exc
    if data.shape[0] == 0:
        raise AudioInputError(f"audio file {p} holds no samples", "record or pick a file with speech in it")
    mono = data.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioInputError(f"audio file {p} contains NaN or infinite samples", "re-export it")
    peak = float(np.max(np.abs(mono)))
    if peak > MAX_PEAK:  # float samples of a sane recording stay near [-1, 1]
        raise AudioInputError(
            f"audio file {p} holds samples far beyond full scale (peak {peak:.3g}, expected at most 1)",
            "it looks damaged or wrongly scaled; re-export it as 16-bit PCM WAV",
        )
    if rate_hz != target_rate_hz:
        # soxr "HQ" is what librosa's default resampler (soxr_hq) runs.
        mono = soxr.resample(mono, rate_hz, target_rate_hz, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _existing_file(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise AudioInputError(f"audio file {p} does not exist", "check the path")
    if not p.is_file():
        raise AudioInputError(f"audio path {p} is not a file", "pass an audio file, not a folder")
    if p.stat().st_size == 0:
        raise AudioInputError(f"audio file {p} is empty (0 bytes)", "record or pick a file with speech in it")
    return p


def _reason(exc: Exception) -> str:
    text = getattr(exc, "error_string", None) or str(exc)
    return " ".join(str(text).split()).rstrip(".") or type(exc).__name__


class FileSource:
    """An audio file standing in for the microphone, paced against the session clock.

    Block k is released when the clock reaches `origin_s + (k + 1) * block`, computed
    from the origin rather than by accumulating sleeps, so a slow consumer never makes
    the input drift. `realtime=False` releases blocks as fast as they are consumed (the
    timestamps stay on the same grid).
    """

    def __init__(
        self,
        path: str | Path,
        block_ms: int = 32,
        clock: Clock = time.monotonic,
        realtime: bool = True,
        tail_silence_s: float = 2.0,
        *,
        origin_s: float | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if block_ms <= 0 or tail_silence_s < 0:
            raise ValueError("block_ms must be positive and tail_silence_s non-negative")
        info = probe_audio(path)
        self.path = Path(path)
        self.source_rate_hz = int(info.samplerate)
        self.source_channels = int(info.channels)
        self.block_samples = MIC_RATE_HZ * block_ms // 1000
        self.realtime = realtime
        self.tail_silence_s = tail_silence_s
        self.origin_s = origin_s
        self.dropped_blocks = 0  # a file never drops; kept for the AudioSource contract
        self._clock = clock
        self._sleep = sleep
        self._samples: np.ndarray | None = None
        self._speech_samples: int | None = None
        self._decoded: np.ndarray | None = None

    @property
    def speech_samples(self) -> int:
        """Samples of the file itself at 16 kHz (without the tail silence)."""
        if self._speech_samples is None:
            raise RuntimeError("enter the FileSource first")
        return self._speech_samples

    def decode(self) -> None:
        """Decode and check every sample now (NaN, infinity, a broken stream), so a bad
        file is refused before any model loads; entering then reuses the result."""
        if self._decoded is None:
            self._decoded = load_audio(self.path, MIC_RATE_HZ)

    async def __aenter__(self) -> FileSource:
        decoded = self._decoded
        if decoded is None:
            decoded = await asyncio.to_thread(load_audio, self.path, MIC_RATE_HZ)
        self._decoded = None  # the padded copy below is what the session keeps
        self._speech_samples = decoded.size
        tail = int(round(self.tail_silence_s * MIC_RATE_HZ))
        total = decoded.size + tail
        total += -total % self.block_samples  # whole blocks; the padding is silence too
        samples = np.zeros(total, dtype=np.float32)
        samples[: decoded.size] = decoded
        self._samples = samples
        log.info(
            "input %s: %.2f s at %d Hz x%d, +%.1f s silence",
            self.path, decoded.size / MIC_RATE_HZ, self.source_rate_hz, self.source_channels, self.tail_silence_s,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._samples = None

    def __aiter__(self) -> AsyncIterator[AudioBlock]:
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[AudioBlock]:
        if self._samples is None:
            raise RuntimeError("use `async with FileSource(...)` before iterating")
        samples = self._samples
        if self.origin_s is None:
            self.origin_s = self._clock()
        block_s = self.block_samples / MIC_RATE_HZ
        for index in range(samples.size // self.block_samples):
            t_s = self.origin_s + (index + 1) * block_s
            if self.realtime:
                delay_s = t_s - self._clock()
                if delay_s > 0:
                    await self._sleep(delay_s)
            start = index * self.block_samples
            yield AudioBlock(samples[start : start + self.block_samples].copy(), t_s)


class MicSource:
    """The microphone through a sounddevice InputStream at 16 kHz mono."""

    def __init__(
        self,
        device: str | int | None = None,
        block_ms: int = 32,
        clock: Clock = time.monotonic,
        *,
        queue_blocks: int = 256,
        stall_check_s: float = 0.5,
        stall_timeout_s: float = 3.0,
        latency: float | str = "high",
    ) -> None:
        if block_ms <= 0:
            raise ValueError(f"block_ms must be positive, got {block_ms}")
        self.block_samples = MIC_RATE_HZ * block_ms // 1000
        self.dropped_blocks = 0
        self.overflows = 0
        self.device_name = ""
        self._device_spec = device
        self._clock = clock
        self._queue_blocks = queue_blocks
        self._stall_check_s = stall_check_s
        self._stall_timeout_s = stall_timeout_s
        self._latency = latency  # PortAudio's; blocks are stamped with their capture time anyway
        self._queue: asyncio.Queue[AudioBlock | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._closing = False
        self._failure: AudioDeviceError | None = None

    async def __aenter__(self) -> MicSource:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=self._queue_blocks)
        self._closing = False
        index = await asyncio.to_thread(resolve_device, self._device_spec, "input")
        self.device_name = await asyncio.to_thread(describe_device, index, "input")
        self._stream = await asyncio.to_thread(self._open, index)
        log.info("microphone: %s, %d-sample blocks", self.device_name, self.block_samples)
        return self

    def _open(self, index: int | None) -> Any:
        return start_stream(
            "input", MIC_RATE_HZ, self.block_samples, index, self._latency, self._callback, self._finished,
            failure=lambda exc: AudioDeviceError(
                f"cannot open microphone {self.device_name}: {exc}",
                "pick another with --input-device (see `sisyphus devices`), or use --input FILE",
            ),
        )

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is not None:
            await asyncio.to_thread(close_stream, stream)
        if self.dropped_blocks:
            log.warning("microphone: %d blocks dropped (the loop fell behind)", self.dropped_blocks)

    def __aiter__(self) -> AsyncIterator[AudioBlock]:
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[AudioBlock]:
        queue = self._queue
        if queue is None:
            raise RuntimeError("use `async with MicSource(...)` before iterating")
        loop = asyncio.get_running_loop()
        last_block_s = loop.time()
        while True:
            try:
                block = await asyncio.wait_for(queue.get(), timeout=self._stall_check_s)
            except asyncio.TimeoutError:
                self._check_alive(loop.time() - last_block_s)
                continue
            last_block_s = loop.time()
            if block is None:
                assert self._failure is not None
                raise self._failure
            yield block

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: copy, timestamp, hand over; never block."""
        if status.input_overflow:
            self.overflows += 1
        now_s = self._clock()
        age_s = time_info.currentTime - time_info.inputBufferAdcTime
        t_s = now_s
        if 0.0 <= age_s < 1.0:  # some host APIs report zeros
            t_s = min(now_s, now_s - age_s + (frames - 1) / MIC_RATE_HZ)
        block = AudioBlock(indata[:, 0].copy(), t_s)
        loop = self._loop
        try:
            assert loop is not None
            loop.call_soon_threadsafe(self._deliver, block)
        except (RuntimeError, AssertionError):  # the loop is closing
            self.dropped_blocks += 1

    def _deliver(self, block: AudioBlock) -> None:
        """Loop thread: enqueue, or count the drop when the consumer fell behind."""
        assert self._queue is not None
        try:
            self._queue.put_nowait(block)
        except asyncio.QueueFull:
            self.dropped_blocks += 1

    def _finished(self) -> None:
        """PortAudio thread: the stream ended; unless we closed it, the device is gone."""
        loop = self._loop
        if self._closing or loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._lost, "stopped delivering audio (disconnected?)")
        except RuntimeError:
            pass

    def _lost(self, why: str) -> None:
        if self._failure is not None or self._closing:
            return
        self._failure = AudioDeviceError(
            f"the microphone {self.device_name} {why}",
            "reconnect it and restart, or pick another with --input-device",
        )
        assert self._queue is not None
        if self._queue.full():  # make room for the sentinel; the oldest block is dropped
            self._queue.get_nowait()
            self.dropped_blocks += 1
        self._queue.put_nowait(None)

    def _check_alive(self, silent_for_s: float) -> None:
        """A stream that ended, or one that says it runs but delivers nothing, is lost.

        After a sound server dies PortAudio can keep reporting the stream as active
        while its thread hangs inside the host API; a real microphone never goes
        seconds without a block.
        """
        stream = self._stream
        if self._closing or stream is None:
            return
        if not stream.active:
            self._lost("stopped delivering audio (disconnected?)")
        elif silent_for_s >= self._stall_timeout_s:
            self._lost(f"delivered no audio for {silent_for_s:.0f} s (disconnected?)")

