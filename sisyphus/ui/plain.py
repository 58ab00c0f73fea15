"""`--plain`: one timestamped line per event, for logs, pipes and terminals without TTY.

Input levels arrive ~10 times a second and are not printed. Memory and the loaded-model
set are re-sent every second: they are printed only when they change (memory at most once
per `memory_period_s`), so a long session gives a readable log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from sisyphus.frames import (
    AssistantSaid,
    BargeIn,
    EchoStatus,
    Notice,
    PreemptiveReply,
    StateChanged,
    TurnEnded,
    TurnLatency,
    UserSaid,
)
from sisyphus.safetext import display_safe, safe_line
from sisyphus.ui.events import (
    ConfigSummary,
    CudaUpdate,
    MemoryUpdate,
    ModelsLoaded,
    VoiceChanged,
)
from sisyphus.ui.format import (
    barge_in_line,
    cuda_lines,
    echo_line,
    latency_line,
    memory_line,
    models_line,
    preempt_line,
    turn_end_line,
)

logger = logging.getLogger(__name__)


# An empty reply line says so: the reason (an error, a barge-in) is on the line before.
NOTHING_HEARD = "(nothing was heard)"


class PlainView:
    """Writes lines like "12:01:02.345 user: hello" to a text stream."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], datetime] = datetime.now,
        memory_period_s: float = 30.0,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._memory_period_s = memory_period_s
        self._last_cuda = ""
        self._last_models = ""
        self._last_memory = ""
        self._last_memory_at: datetime | None = None
        self._closed = False  # set when the stream can no longer be written

    def start(self) -> None:
        pass

    def stop(self) -> None:
        if not self._closed:
            with contextlib.suppress(OSError):
                self._out().flush()

    def handle(self, event: object) -> None:
        text = self.describe(display_safe(event))
        if text is not None:
            self._write(text)

    def describe(self, event: object) -> str | None:
        """The line for an event (without timestamp), or None when it is not printed."""
        if isinstance(event, StateChanged):
            state = getattr(event.state, "value", event.state)
            return f"state: {state} (turn {event.turn_id})"
        if isinstance(event, UserSaid):
            return f"user: {event.text}"
        if isinstance(event, AssistantSaid):
            mark = " (interrupted)" if event.interrupted else ""
            return f"assistant{mark}: {event.text or NOTHING_HEARD}"
        if isinstance(event, TurnLatency):
            return f"latency turn {event.turn_id}: {latency_line(event)}"
        if isinstance(event, Notice):
            return f"{event.level}: {event.text}"
        if isinstance(event, TurnEnded):
            return f"end of turn {event.turn_id}: {turn_end_line(event.decision)}"
        if isinstance(event, PreemptiveReply):
            return f"preemptive {preempt_line(event)}"
        if isinstance(event, EchoStatus):
            return f"echo cancellation: {echo_line(event)}"
        if isinstance(event, BargeIn):
            return f"barge-in turn {event.turn_id}: {barge_in_line(event)}"
        if isinstance(event, CudaUpdate):
            cuda = "; ".join(cuda_lines(event.status))
            self._last_cuda, changed = cuda, cuda != self._last_cuda
            return cuda if changed else None
        if isinstance(event, MemoryUpdate):
            return self._memory(event)
        if isinstance(event, ModelsLoaded):
            models = models_line(event)
            self._last_models, changed = models, models != self._last_models
            return f"models: {models}" if changed else None
        if isinstance(event, VoiceChanged):
            kind = f" ({event.kind})" if event.kind else ""
            return f"voice: {event.name}{kind}"
        if isinstance(event, ConfigSummary):
            return "config: " + "; ".join(event.lines)
        return None

    def _memory(self, event: MemoryUpdate) -> str | None:
        memory = memory_line(event.snapshot)
        now = self._clock()
        due = (
            self._last_memory_at is None
            or (now - self._last_memory_at).total_seconds() >= self._memory_period_s
        )
        if memory == self._last_memory or not due:
            return None
        self._last_memory, self._last_memory_at = memory, now
        return f"memory: {memory}"

    def _write(self, text: str) -> None:
        if self._closed:
            return
        stamp = self._clock().strftime("%H:%M:%S.%f")[:-3]
        out = self._out()
        try:
            out.write(f"{stamp} {safe_line(text)}\n")  # one line, whatever the text held
            out.flush()
        except (BrokenPipeError, OSError) as exc:
            self._reader_gone(out, exc)

    def _reader_gone(self, out: TextIO, exc: OSError) -> None:
        """The pipe's reader quit (`| head`) or the terminal closed: the conversation and its
        transcript go on without the log, and the exit does not fail flushing it again."""
        self._closed = True
        logger.debug("plain view stopped writing: %s", exc)
        if out is sys.stdout:
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, out.fileno())
                os.close(devnull)

    def _out(self) -> TextIO:
        # Resolved per write so pytest's capture and redirected stdout are honoured.
        return self._stream if self._stream is not None else sys.stdout

