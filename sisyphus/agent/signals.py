"""SIGTERM, SIGHUP (and Windows' SIGBREAK) stop a session the way Ctrl-C does.

Ctrl-C cancels the session task (asyncio.run's own SIGINT handler), so the reply in
flight is recorded as heard and the transcript gets its end line. A service manager's
SIGTERM, or the terminal closing (SIGHUP), would otherwise kill the process where it
stands and lose both. Each of them is handed to whatever handles SIGINT at that moment:
asyncio's handler while the session runs, Python's KeyboardInterrupt while models load.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = ("SIGTERM", "SIGHUP", "SIGBREAK")  # those this platform lacks are skipped


class StopSignals:
    """Which stop signal arrived, if any (for the closing line)."""

    def __init__(self) -> None:
        self.received: str | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIG_DFL / SIG_IGN: no Python handler to borrow
            raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_as_ctrl_c() -> Iterator[StopSignals]:
    """Within the block, the stop signals act as Ctrl-C; the old handlers come back after.

    Outside the main thread (signal handlers cannot be set there) it does nothing.
    """
    state = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = {}
    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is None:
            continue
        with contextlib.suppress(OSError, ValueError):
            previous[number] = signal.signal(number, state._handle)
    try:
        yield state
    finally:
        for number, handler in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(number, handler)
