"""One `sisyphus talk` session: wires audio, VAD, the turn controller, UI and transcript.

Stages are coroutines joined by queues: the audio source feeds VAD (on its own thread),
VAD and the keyboard feed the controller's input queue, and every stage reports to one
event queue that the UI and the transcript consume. Ending the session (input file
done, `/quit`, Ctrl-C, a lost device) cancels the tasks and closes the transcript.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sisyphus.agent.controller import SetVoice, TurnController, TypedText
from sisyphus.errors import SisyphusError
from sisyphus.frames import InputLevel, Notice
from sisyphus.ui.view import Tee, run_view

log = logging.getLogger(__name__)

LEVEL_INTERVAL_S = 0.1
COMMANDS = "/voice NAME, /voices, /quit"


@dataclass
class SessionParts:
    """Everything a session runs with; built by sisyphus.agent.build."""

    controller: TurnController
    source: Any | None  # AudioSource (mic or file); None with --text
    sink: Any  # AudioSink (speaker or file)
    endpointer: Any | None
    events: asyncio.Queue
    consumers: list[Any]  # views and the transcript writer: objects with handle(event)
    read_keyboard: bool
    voice_names: Callable[[], list[str]] | None = None
    # Typed lines from a key-by-key editor under the dashboard; None reads stdin's lines.
    typed_lines: Callable[[], Iterable[str]] | None = None
    # The controller's input queue; given, others (tests, scripts) can feed it typed turns.
    inputs: asyncio.Queue | None = None


@dataclass(frozen=True)
class SessionResult:
    turns: int
    reason: str


async def run_session(parts: SessionParts) -> SessionResult:
    """Run until the input ends, the user quits, or a fatal error; always cleans up."""
    inputs: asyncio.Queue = parts.inputs if parts.inputs is not None else asyncio.Queue(maxsize=256)
    stop = asyncio.Event()
    reason = "ended"
    dispatcher = asyncio.create_task(run_view(Tee(*parts.consumers), parts.events), name="events")
    await parts.sink.start()
    tasks = [asyncio.create_task(parts.controller.run(inputs), name="controller")]
    if parts.source is not None:
        tasks.append(asyncio.create_task(_listen(parts, inputs), name="listen"))
    keyboard = _Keyboard(inputs, stop, parts) if parts.read_keyboard else None
    if keyboard:
        keyboard.start(asyncio.get_running_loop())
    tasks.append(asyncio.create_task(parts.sink.wait_failure(), name="speaker-watch"))
    stopper = asyncio.create_task(stop.wait(), name="stop")
    try:
        pending = {*tasks, stopper}
        while tasks[0] in pending and stopper in pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper:
                    task.result()  # a lost device or a failed stage ends the session here
        if stopper not in pending:
            reason = "quit"
    except SisyphusError as exc:
        parts.events.put_nowait(Notice(exc.one_line(), "error"))
        reason = exc.one_line()
        raise
    except asyncio.CancelledError:
        reason = "interrupted"
        raise
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, SisyphusError):
            await asyncio.wait_for(asyncio.gather(*tasks, stopper, return_exceptions=True), 1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(parts.sink.close(), 1.0)
        dispatcher.cancel()  # hands over the events still queued, then ends
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
        for consumer in parts.consumers:
            close = getattr(consumer, "close", None)
            if close is not None:
                close(reason)
    return SessionResult(parts.controller.turns_done, reason)


async def _listen(parts: SessionParts, inputs: asyncio.Queue) -> None:
    """Audio source → level meter and VAD (on its own thread) → controller inputs."""
    loop = asyncio.get_running_loop()
    vad_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sisyphus-vad")
    controller = parts.controller
    last_level = -math.inf
    muted = False
    try:
        async with parts.source as source:
            async for block in source:
                if block.t_s - last_level >= LEVEL_INTERVAL_S:
                    last_level = block.t_s
                    parts.events.put_nowait(InputLevel(_dbfs(block.samples)))
                if not controller.barge_in and controller.replying:
                    muted = True  # half duplex: the speaker would hear itself
                    continue
                if muted:
                    muted = False
                    await loop.run_in_executor(vad_pool, parts.endpointer.reset)
                found = await loop.run_in_executor(vad_pool, parts.endpointer.push, block.samples, block.t_s)
                for item in found:
                    await inputs.put(item)
        # The input file ended: close a turn still open, finish the last reply, then stop.
        for item in await loop.run_in_executor(vad_pool, parts.endpointer.flush):
            await inputs.put(item)
        await inputs.put(None)
    finally:
        vad_pool.shutdown(wait=False, cancel_futures=True)


QUIT_COMMANDS = ("/quit", "/exit")


class _Keyboard:
    """Reads typed lines on a daemon thread: text turns and `/voice`, `/voices`, `/quit`.

    Lines from a pipe may come faster than replies: each waits for room in the input
    queue (the reader thread blocks) rather than being dropped. From a pipe, `/quit` is
    the end of input, so the reply in flight finishes first; typed at a terminal it
    stops at once.
    """

    def __init__(self, inputs: asyncio.Queue, stop: asyncio.Event, parts: SessionParts) -> None:
        self._inputs = inputs
        self._stop = stop
        self._parts = parts

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        thread = threading.Thread(target=self._read, args=(loop,), name="sisyphus-keyboard", daemon=True)
        thread.start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        interactive = self._parts.typed_lines is not None or _is_terminal(sys.stdin)
        quit_piped = False
        for line in self._parts.typed_lines() if self._parts.typed_lines else sys.stdin:
            if not interactive and line.strip() in QUIT_COMMANDS:
                quit_piped = True
                break
            if not self._call(loop, self._line(line.strip())):
                return  # the session is over
        if self._parts.source is None:
            # End of typed input (a pipe, or Ctrl-D): finish the last reply, then stop.
            self._call(loop, self._inputs.put(None))
        elif quit_piped:
            loop.call_soon_threadsafe(self._stop.set)

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, coro: Any) -> bool:
        """Run `coro` on the loop and wait for it; False once the loop is gone."""
        try:
            asyncio.run_coroutine_threadsafe(coro, loop).result()
        except (RuntimeError, concurrent.futures.CancelledError):
            coro.close()
            return False
        return True

    async def _line(self, line: str) -> None:
        events = self._parts.events
        if not line:
            return
        if line in QUIT_COMMANDS:
            self._stop.set()
        elif line == "/voices":
            names = self._parts.voice_names() if self._parts.voice_names else []
            events.put_nowait(Notice("voices: " + ", ".join(names)))
        elif line.split()[0] == "/voice":
            name = line.removeprefix("/voice").strip()
            names = self._parts.voice_names() if self._parts.voice_names else [name]
            if name in names:
                await self._inputs.put(SetVoice(name))  # confirmed when it takes effect
            elif not name:
                events.put_nowait(Notice(f"/voice needs a name: {', '.join(names)}", "warning"))
            else:
                events.put_nowait(Notice(f"unknown voice {name!r}; available: {', '.join(names)}", "warning"))
        elif line.startswith("/"):
            events.put_nowait(Notice(f"unknown command {line.split()[0]!r}; commands: {COMMANDS}", "warning"))
        else:
            if self._parts.controller.replying:
                events.put_nowait(Notice(f"queued after the reply in flight: {line}"))
            await self._inputs.put(TypedText(line, time.monotonic()))


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stdin, or a closed one
        return False


def _dbfs(samples: np.ndarray) -> float:
    if not len(samples):
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(max(rms, 1e-6))


def transcript_path_of(consumers: list[Any]) -> Path | None:
    for consumer in consumers:
        path = getattr(consumer, "path", None)
        if isinstance(path, Path):
            return path
    return None
