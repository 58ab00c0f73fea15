"""`--plain`: one timestamped line per event, for logs, pipes and terminals without TTY.

Input levels arrive ~30 times a second and are not printed; memory snapshots are printed
only when the figures change, and at most once per `memory_period_s`, so a long session
gives a readable log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from sisyphus.frames import AssistantSaid, Notice, StateChanged, TurnLatency, UserSaid
from sisyphus.ui.events import (
    ConfigSummary,
    ModelLoaded,
    ModelUnloaded,
    StatusUpdate,
    VoiceChanged,
)
from sisyphus.ui.format import cuda_lines, latency_line, memory_line


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
        self._last_memory = ""
        self._last_memory_at: datetime | None = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self._out().flush()

    def handle(self, event: object) -> None:
        text = self.describe(event)
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
            return f"assistant{mark}: {event.text}"
        if isinstance(event, TurnLatency):
            return f"latency turn {event.turn_id}: {latency_line(event)}"
        if isinstance(event, Notice):
            return f"{event.level}: {event.text}"
        if isinstance(event, StatusUpdate):
            return self._status(event)
        if isinstance(event, ModelLoaded):
            return _model_loaded(event)
        if isinstance(event, ModelUnloaded):
            return f"model unloaded: {event.role} {event.name}"
        if isinstance(event, VoiceChanged):
            kind = f" ({event.kind})" if event.kind else ""
            return f"voice: {event.name}{kind}"
        if isinstance(event, ConfigSummary):
            return "config: " + ", ".join(f"{k} {v}" for k, v in event.items)
        return None

    def _status(self, event: StatusUpdate) -> str | None:
        parts = []
        if event.cuda is not None:
            cuda = "; ".join(cuda_lines(event.cuda))
            if cuda != self._last_cuda:
                self._last_cuda = cuda
                parts.append(cuda)
        if event.memory is not None:
            memory = memory_line(event.memory)
            now = self._clock()
            due = (
                self._last_memory_at is None
                or (now - self._last_memory_at).total_seconds() >= self._memory_period_s
            )
            if memory != self._last_memory and due:
                self._last_memory, self._last_memory_at = memory, now
                parts.append(f"memory: {memory}")
        return " | ".join(parts) if parts else None

    def _write(self, text: str) -> None:
        stamp = self._clock().strftime("%H:%M:%S.%f")[:-3]
        out = self._out()
        out.write(f"{stamp} {text}\n")
        out.flush()

    def _out(self) -> TextIO:
        # Resolved per write so pytest's capture and redirected stdout are honoured.
        return self._stream if self._stream is not None else sys.stdout


def _model_loaded(event: ModelLoaded) -> str:
    where = f" on {event.device}" if event.device else ""
    text = f"model loaded: {event.role} {event.name}{where} in {event.load_s:.1f} s"
    if event.memory is not None:
        text += f" ({memory_line(event.memory)})"
    return text
