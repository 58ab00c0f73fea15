"""Puts the echo canceller between the speaker and the microphone for one session.

`audio.echo_cancellation` decides: `auto` cancels whenever a microphone and a sound
output device are both open (an open speaker is then assumed: with headphones it costs a
fraction of a millisecond per frame and removes nothing), `on` always, `off` never.
Noise suppression and the high-pass filter have their own switches and run on the
microphone whether or not echo is cancelled. An `--input` file is never processed: it
is not a room, and tests rely on it arriving unchanged.

`EchoControlledSource` is an AudioSource: it wraps the microphone, sends each block
through the canceller on a worker thread of its own, and reports `EchoStatus` events, so
the session, the VAD and the controller need not know it is there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sisyphus.audio.echo import INSTALL_HINT, EchoCanceller, EchoReport
from sisyphus.audio.reference import FarEndReference
from sisyphus.errors import AudioDeviceError, ConfigError
from sisyphus.frames import AudioBlock, EchoStatus

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")


def wants_echo_cancellation(mode: str, *, microphone: bool, speaker: bool) -> bool:
    """Whether a session with this input and output should cancel echo."""
    if mode not in MODES:
        raise ConfigError(f"audio.echo_cancellation: must be one of {', '.join(MODES)}, got {mode!r}", "use auto, on or off")
    return microphone and (mode == "on" or (mode == "auto" and speaker))


def with_echo_control(source: Any, sink: Any, audio: Any, events: asyncio.Queue | None) -> Any:
    """The session's audio source, behind the canceller when the config asks for any processing.

    `audio` is the AudioConfig. With `auto`, a missing binding is a warning and the
    microphone runs unprocessed; with `on`, it is an error that says how to install it.
    """
    from sisyphus.audio.sink import SpeakerSink
    from sisyphus.audio.source import MicSource

    microphone = isinstance(source, MicSource)
    aec = wants_echo_cancellation(audio.echo_cancellation, microphone=microphone, speaker=isinstance(sink, SpeakerSink))
    if not microphone or not (aec or audio.noise_suppression or audio.high_pass_filter):
        why = "the input is a file" if source is not None and not microphone else "turned off"
        _emit(events, EchoStatus("off", why if source is not None else "no microphone"))
        return source
    reference = FarEndReference() if aec else None
    try:
        canceller = EchoCanceller(
            reference, echo_cancellation=aec, noise_suppression=audio.noise_suppression,
            high_pass_filter=audio.high_pass_filter,
        )  # fmt: skip
    except AudioDeviceError as exc:
        if audio.echo_cancellation == "on":
            raise
        log.warning("%s", exc.one_line())
        _emit(events, EchoStatus("off", f"unavailable: {INSTALL_HINT.split(',')[0]}"))
        return source
    if reference is not None:
        sink.monitor = reference.write
    return EchoControlledSource(source, canceller, events)


def _emit(events: asyncio.Queue | None, event: object) -> None:
    if events is not None:
        events.put_nowait(event)


class EchoControlledSource:
    """An AudioSource whose blocks went through an EchoCanceller first."""

    def __init__(self, source: Any, canceller: EchoCanceller, events: asyncio.Queue | None = None) -> None:
        self.source = source
        self.canceller = canceller
        self._events = events
        self._pool: ThreadPoolExecutor | None = None

    @property
    def dropped_blocks(self) -> int:
        return int(self.source.dropped_blocks)

    async def __aenter__(self) -> EchoControlledSource:
        await self.source.__aenter__()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sisyphus-aec")
        state = "on" if self.canceller.echo_cancellation else "off"
        detail = self.canceller.describe() if state == "on" else f"only {self.canceller.describe()}"
        _emit(self._events, EchoStatus(state, detail))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        await self.source.__aexit__(*exc_info)

    def __aiter__(self) -> AsyncIterator[AudioBlock]:
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[AudioBlock]:
        if self._pool is None:
            raise RuntimeError("use `async with` before iterating")
        loop = asyncio.get_running_loop()
        async for block in self.source:
            samples, t_s = await loop.run_in_executor(self._pool, self.canceller.process, block.samples, block.t_s)
            for report in self.canceller.meter.take():
                _emit(self._events, _status(self.canceller, report))
            if samples.size:
                yield AudioBlock(samples, t_s)


def _status(canceller: EchoCanceller, report: EchoReport) -> EchoStatus:
    return EchoStatus(
        "on", canceller.describe(), echo_reduction_db=report.echo_reduction_db, echo_dbfs=report.echo_dbfs,
        seconds=report.seconds,
    )  # fmt: skip
