"""What a view is, and the coroutine that feeds it from the event queue.

Stages only put events on a queue; a view is the single consumer. `Tee` lets one queue
feed several consumers (the screen and the transcript), and a failing consumer is logged
without starving the others: a rendering bug must not cost the user the transcript.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from rich.console import Console

from sisyphus.ui.dashboard import Dashboard
from sisyphus.ui.plain import PlainView

logger = logging.getLogger(__name__)


@runtime_checkable
class View(Protocol):
    def handle(self, event: object) -> None:
        """Take any event; kinds the view does not know are ignored."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Tee:
    """One view made of several consumers; anything with `handle` will do."""

    def __init__(self, *consumers: object) -> None:
        self.consumers = consumers

    def start(self) -> None:
        for consumer in self.consumers:
            _call(consumer, "start")

    def stop(self) -> None:
        for consumer in self.consumers:
            _call(consumer, "stop")

    def handle(self, event: object) -> None:
        for consumer in self.consumers:
            _call(consumer, "handle", event)


def _call(consumer: object, method: str, *args: object) -> None:
    fn = getattr(consumer, method, None)
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:
        logger.exception("%s.%s failed", type(consumer).__name__, method)


async def run_view(view: View, events: asyncio.Queue) -> None:
    """Feed `view` until cancelled; events already queued are still handed over first.

    Draining on the way out is what keeps the last reply of a Ctrl-C'd session in the
    transcript. Starting and stopping the view is its owner's business (the dashboard is
    up before the models load and stays up for the closing lines).
    """
    try:
        while True:
            event = await events.get()
            _handle(view, event)
            events.task_done()
    finally:
        while not events.empty():
            _handle(view, events.get_nowait())
            events.task_done()


def _handle(view: View, event: object) -> None:
    try:
        view.handle(event)
    except Exception:
        logger.exception("view failed on %s", type(event).__name__)


def make_view(plain: bool, console: Console | None = None) -> View:
    """The dashboard on an interactive terminal, one line per event everywhere else.

    A dumb terminal (TERM=dumb, e.g. an editor's shell) cannot move the cursor, so Live
    would print every frame below the last one: it gets the plain view too.
    """
    given = console
    console = console if console is not None else Console()
    if plain or not console.is_terminal or console.is_dumb_terminal:
        return PlainView(stream=given.file if given is not None else None)
    return Dashboard(console=console)
