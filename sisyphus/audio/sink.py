"""Where reply audio goes: the speaker (PortAudio) or a WAV file on the session timeline.

Both sinks share one contract: `write` queues a turn's 24 kHz audio without blocking,
`flush` drops everything queued (barge-in) so playback stops within one output block,
`pause`/`resume` hold a reply without losing it (a barge-in that may be a backchannel),
and per-turn counts say how much of each turn was actually played and when it started.
Every block a sink plays, silence included, also goes to its `monitor` (the echo
canceller's far-end reference) with the clock time it was handed to the device, and
whether the device ran dry before it (an underrun: the speaker played silence meanwhile).
The speaker is pulled by PortAudio's callback thread; the file sink is pulled by a task
that advances block by block on the session clock, so `--output` holds exactly what would
have been heard, silence included, aligned with `--input`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sisyphus.audio.devices import close_stream, describe_device, list_devices, resolve_device, start_stream
from sisyphus.audio.playback import PlaybackBuffer
from sisyphus.audio.wav import StreamingWavWriter
from sisyphus.errors import AudioDeviceError
from sisyphus.frames import SPEAKER_RATE_HZ

__all__ = ["AudioSink", "FileSink", "SpeakerSink", "list_devices", "resolve_device"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Monitor = Callable[[np.ndarray, float, bool], None]  # (block as played, clock time it went to the device, after an underrun)
_WATCH_PERIOD_S = 0.5
_MAX_OUTPUT_LATENCY_S = 2.0  # a longer "latency" is a host API reporting nonsense
Sleep = Callable[[float], Awaitable[Any]]


class AudioSink(Protocol):
    sample_rate_hz: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def write(self, turn_id: int, samples: np.ndarray) -> None: ...

    def flush(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def played_samples(self, turn_id: int) -> int: ...

    async def drained(self, turn_id: int) -> None: ...

    def first_sound_s(self, turn_id: int) -> float | None: ...


class _BufferedSink:
    """The loop-side half both sinks share: queueing, accounting and drain waiters."""

    sample_rate_hz: int = SPEAKER_RATE_HZ

    def __init__(self, block_ms: int, clock: Clock) -> None:
        if block_ms <= 0:
            raise ValueError(f"block_ms must be positive, got {block_ms}")
        self.block_samples = SPEAKER_RATE_HZ * block_ms // 1000
        self._clock = clock
        self._buffer = PlaybackBuffer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._failure: AudioDeviceError | None = None
        self._failed = asyncio.Event()
        # Called on the consumer's thread with every block played; must not block.
        self.monitor: Monitor | None = None

    def write(self, turn_id: int, samples: np.ndarray) -> None:
        """Queue audio of a turn; raises the device's failure if it is gone."""
        if self._failure is not None:
            raise self._failure
        self._buffer.push(turn_id, samples)

    def flush(self) -> None:
        """Barge-in: drop all queued audio; the consumer plays silence from its next block."""
        self._buffer.flush()
        self._wake()

    def pause(self) -> None:
        """Hold the queued audio; the speaker goes quiet once what the device already took has played."""
        self._buffer.pause()

    def resume(self) -> None:
        """Play on from where `pause` stopped."""
        self._buffer.resume()

    def last_sound_end_s(self, turn_id: int) -> float | None:
        """Clock time the turn's audio handed over so far stops sounding (after a pause: when it went quiet)."""
        return self._buffer.last_sound_end_s(turn_id, SPEAKER_RATE_HZ)

    def played_samples(self, turn_id: int) -> int:
        """Samples of the turn that have been heard (reached the device's output) by now."""
        return self._buffer.played(turn_id, self._clock(), SPEAKER_RATE_HZ)

    def handed_samples(self, turn_id: int) -> int:
        """Samples of the turn the device has taken: heard, or in its buffer about to be."""
        return self._buffer.played(turn_id)

    def first_sound_s(self, turn_id: int) -> float | None:
        return self._buffer.first_sound_s(turn_id)

    async def drained(self, turn_id: int) -> None:
        """Return once nothing of the turn is left to play (played or flushed)."""
        if self._failure is not None:
            raise self._failure
        if self._buffer.pending(turn_id) == 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(turn_id, []).append(future)
        await future

    async def wait_failure(self) -> None:
        """Never returns normally: raises AudioDeviceError once the device is lost.

        Run it beside the conversation so a vanished device ends the session cleanly.
        """
        await self._failed.wait()
        assert self._failure is not None
        raise self._failure

    def _notify_drained_threadsafe(self, turns: list[int]) -> None:
        loop = self._loop
        if turns and loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def _wake(self) -> None:
        for turn_id in list(self._waiters):
            if self._buffer.pending(turn_id) == 0:
                for future in self._waiters.pop(turn_id):
                    if not future.done():
                        future.set_result(None)

    def _fail(self, error: AudioDeviceError) -> None:
        if self._failure is not None:
            return
        log.error("%s", error.message)
        self._failure = error
        self._buffer.flush()
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)
        self._waiters.clear()
        self._failed.set()

    def _release_waiters(self) -> None:
        self._buffer.flush()
        self._wake()


class SpeakerSink(_BufferedSink):
    """Plays reply audio through a sounddevice OutputStream at 24 kHz mono."""

    def __init__(
        self,
        device: str | int | None = None,
        block_ms: int = 20,
        clock: Clock = time.monotonic,
        *,
        latency: float | str = "low",
        stall_timeout_s: float = 3.0,
    ) -> None:
        super().__init__(block_ms, clock)
        self._device_spec = device
        self._latency = latency
        self._stall_timeout_s = stall_timeout_s
        self._callbacks = 0
        self._watchdog: asyncio.Task[None] | None = None
        self._stream: Any = None
        self._closing = False
        self.underflows = 0
        self.device_name = ""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        index = await asyncio.to_thread(resolve_device, self._device_spec, "output")
        self.device_name = await asyncio.to_thread(describe_device, index, "output")
        self._stream = await asyncio.to_thread(self._open, index)
        self._watchdog = asyncio.create_task(self._watch(), name="speaker-watchdog")
        log.info("speaker: %s, %d-sample blocks", self.device_name, self.block_samples)

    async def _watch(self) -> None:
        """Fail when the callback stops running while the stream claims to be active.

        After a sound server dies PortAudio can hang inside the host API without ever
        calling the finished callback; a live output stream calls back every block.
        """
        seen, quiet_s = -1, 0.0
        while self._failure is None and not self._closing:
            await asyncio.sleep(_WATCH_PERIOD_S)
            if self._callbacks != seen:
                seen, quiet_s = self._callbacks, 0.0
                continue
            quiet_s += _WATCH_PERIOD_S
            if quiet_s >= self._stall_timeout_s:
                self._fail(
                    AudioDeviceError(
                        f"the speaker {self.device_name} stopped taking audio for {quiet_s:.0f} s (disconnected?)",
                        "reconnect it and restart, or pick another with --output-device",
                    )
                )

    def _open(self, index: int | None) -> Any:
        return start_stream(
            "output", SPEAKER_RATE_HZ, self.block_samples, index, self._latency, self._callback, self._finished,
            failure=lambda exc: AudioDeviceError(
                f"cannot open speaker {self.device_name}: {exc}",
                "pick another with --output-device (see `sisyphus devices`), or use --output FILE.wav",
            ),
        )

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: copy queued audio out, never wait for anything."""
        self._callbacks += 1
        underflow = bool(status.output_underflow)
        if underflow:
            self.underflows += 1
        now_s = self._clock()
        lead_s = time_info.outputBufferDacTime - time_info.currentTime
        if not 0.0 <= lead_s < 1.0:  # some host APIs report zeros or garbage
            lead_s = 0.0
        drained = self._buffer.pull(outdata[:, 0], now_s + lead_s, SPEAKER_RATE_HZ)
        monitor = self.monitor
        if monitor is not None:
            monitor(outdata[:, 0], now_s, underflow)
        self._notify_drained_threadsafe(drained)

    def _finished(self) -> None:
        """PortAudio thread: the stream stopped; unless we closed it, the device is gone."""
        if self._closing or self._loop is None or self._loop.is_closed():
            return
        error = AudioDeviceError(
            f"the speaker {self.device_name} stopped working (disconnected?)",
            "reconnect it and restart, or pick another with --output-device",
        )
        try:
            self._loop.call_soon_threadsafe(self._fail, error)
        except RuntimeError:
            pass

    async def drained(self, turn_id: int) -> None:
        """Return once the turn's last sample has left the speaker, not merely the queue."""
        await super().drained(turn_id)
        end_s = self._buffer.last_sound_end_s(turn_id, SPEAKER_RATE_HZ)
        if end_s is not None:
            delay_s = end_s - self._clock()
            if 0.0 < delay_s < _MAX_OUTPUT_LATENCY_S:
                await asyncio.sleep(delay_s)

    async def close(self) -> None:
        self._closing = True
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
        stream, self._stream = self._stream, None
        if stream is not None:
            await asyncio.to_thread(close_stream, stream)
        self._release_waiters()


class FileSink(_BufferedSink):
    """Writes what would have been played to a 24 kHz WAV, silence included, in real time.

    Sample n of the file is clock time `origin_s + n / 24000`; pass the FileSource's
    origin so input and output files share one timeline.
    """

    def __init__(
        self,
        path: str | Path,
        block_ms: int = 20,
        clock: Clock = time.monotonic,
        *,
        origin_s: float | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(block_ms, clock)
        self.path = Path(path)
        self.origin_s = origin_s
        self._sleep = sleep
        self._writer: StreamingWavWriter | None = None
        self._task: asyncio.Task[None] | None = None
        _check_output_path(self.path)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._writer = StreamingWavWriter(self.path, SPEAKER_RATE_HZ)
        except OSError as exc:
            raise AudioDeviceError(f"cannot write {self.path}: {exc.strerror}", "pick a writable path") from exc
        if self.origin_s is None:
            self.origin_s = self._clock()
        self._task = asyncio.create_task(self._run(), name="file-sink")

    async def _run(self) -> None:
        assert self._writer is not None and self.origin_s is not None
        block = np.zeros(self.block_samples, dtype=np.float32)
        block_s = self.block_samples / SPEAKER_RATE_HZ
        index = 0
        while True:
            due_s = self.origin_s + index * block_s
            delay_s = due_s - self._clock()
            if delay_s > 0:
                await self._sleep(delay_s)
            drained = self._buffer.pull(block, due_s, SPEAKER_RATE_HZ)
            if self.monitor is not None:
                self.monitor(block, due_s, False)
            try:
                self._writer.write(block)
            except OSError as exc:
                self._fail(AudioDeviceError(f"cannot write {self.path}: {exc.strerror}", "check free disk space"))
                return
            index += 1
            if drained:
                self._wake()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # gather() hands back the task's CancelledError as a value, while a
            # cancellation of close() itself still propagates.
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.warning("file sink stopped with %r", outcome)
        if self._writer is not None:
            self._writer.close()
            log.info("wrote %.2f s to %s", self._writer.frames_written / SPEAKER_RATE_HZ, self.path)
        self._release_waiters()


def _check_output_path(path: Path) -> None:
    if path.suffix.lower() != ".wav":
        raise AudioDeviceError(f"--output must be a .wav file, got {path}", "use a name ending in .wav")
    if not path.parent.exists():
        raise AudioDeviceError(f"folder {path.parent} does not exist", "create it or pick another --output path")
    if path.is_dir():
        raise AudioDeviceError(f"--output {path} is a folder", "give a file name ending in .wav")
