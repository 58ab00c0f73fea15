"""Which GPU fast paths are on, and why one is off: said once, remembered for the UI and bench.

Each fast path (CUDA graphs for the TTS frame step, the static-cache compiled ASR decode
step, ...) reports itself when a model is loaded or warmed up. A fast path that cannot run
(CPU device, old torch, a capture that failed or disagreed with the plain path) falls back
to the plain path and says so once per process with its reason; `sisyphus bench` writes
the final states into its report.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastPath:
    name: str  # e.g. "tts cuda graphs"
    enabled: bool
    detail: str  # why it is off, or what it runs with

    def describe(self) -> str:
        state = "on" if self.enabled else "off"
        return f"{self.name}: {state}" + (f" ({self.detail})" if self.detail else "")


_lock = threading.Lock()
_states: dict[str, FastPath] = {}
_said: set[tuple[str, str]] = set()


def report(name: str, enabled: bool, detail: str = "", *, warn: bool = True) -> FastPath:
    """Record a fast path's state; a fallback (enabled=False) is logged once per reason.

    `warn=False` logs an expected fallback (the device is a CPU) at info level only.
    """
    path = FastPath(name, enabled, detail)
    with _lock:
        _states[name] = path
        first = (name, detail) not in _said
        _said.add((name, detail))
    if first:
        if enabled or not warn:
            log.info("fast path %s", path.describe())
        else:
            log.warning("fast path %s; using the plain path", path.describe())
    return path


def states() -> dict[str, FastPath]:
    """Every fast path reported so far, by name."""
    with _lock:
        return dict(_states)
