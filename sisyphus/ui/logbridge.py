"""Log records shown as the view's own lines while a session runs.

Without this, a retry warning from the LLM client or a skipped phrase came out as
`2026-11-27 03:58:55,063 WARNING sisyphus.llm.client: ...` between `--plain`'s
`HH:MM:SS.mmm level: text` lines (and over the dashboard). While attached, warnings and
errors from any logger become `Notice`s of the view and the terminal handlers are set
aside; `--debug` keeps the plain log (its timestamps and logger names are the point).
Records may come from any thread: views take events under their own lock or in one write.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sisyphus.frames import Notice


class LogBridge(logging.Handler):
    """A root handler that hands WARNING and above to `view.handle` as Notices."""

    def __init__(self, view: Any) -> None:
        super().__init__(logging.WARNING)
        self._view = view
        self._busy = threading.local()  # a view that logs while handling must not loop
        self._set_aside: list[logging.Handler] = []

    def attach(self) -> LogBridge:
        root = logging.getLogger()
        self._set_aside = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
        for handler in self._set_aside:
            root.removeHandler(handler)
        root.addHandler(self)
        return self

    def detach(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        for handler in self._set_aside:
            root.addHandler(handler)
        self._set_aside = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            level = "error" if record.levelno >= logging.ERROR else "warning"
            self._view.handle(Notice(" ".join(text.split()), level))
        except Exception:  # logging must never take the session down
            self.handleError(record)
        finally:
            self._busy.on = False


def attach_log_bridge(view: Any, debug: bool) -> LogBridge | None:
    """Route log warnings into `view` until `detach()`; None (plain logging) with --debug."""
    return None if debug else LogBridge(view).attach()
