"""Replies prepared before the user finishes: started at a pause, played only if the turn ends there.

At a TurnPaused the words said so far are transcribed and a reply is started on them, LLM
and TTS included, but held back: nothing reaches the speaker, the history or the UI.
If the turn then ends with no speech after the pause (the endpointer's guarantee: the
same words), the controller adopts the prepared turn and opens its gate, so the reply
plays as soon as the end is confirmed. If the user goes on (SpeechResumed, a piece of
long speech, the session ending), the preparation is cancelled unheard.

This module owns only the bookkeeping of the one preparation in flight; the controller
still owns turns: it makes the held turn and its reply coroutine (`start_held`), adopts
a preparation (numbering the turn, announcing it, opening its gate) and reports the hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sisyphus.errors import SisyphusError
from sisyphus.frames import PreemptiveReply, TurnPaused
from sisyphus.llm.chunker import join_phrases

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 1.0

# (user text, speech end, timing) → (the held turn, the coroutine that runs its reply)
StartHeld = Callable[[str, float, dict[str, float]], tuple[Any, Coroutine[Any, Any, None]]]


@dataclass
class Preparation:
    """One reply prepared at a pause: its ASR, then the held reply, in one task."""

    paused: TurnPaused
    started_s: float
    text: str = ""
    turn: Any = None  # the held Turn, once ASR found words
    task: asyncio.Task | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once ASR is done (or failed)


class PreparedReplies:
    """The preparation in flight, if any: start, adopt (hit) or drop (miss)."""

    def __init__(
        self,
        *,
        transcribe: Callable[[np.ndarray], Awaitable[str]],
        start_held: StartHeld,
        emit: Callable[[object], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transcribe = transcribe
        self._start_held = start_held
        self._emit = emit
        self._clock = clock
        self._current: Preparation | None = None

    @property
    def pending(self) -> bool:
        return self._current is not None

    async def start(self, paused: TurnPaused, earlier_pieces: list[str]) -> None:
        """Prepare a reply to what was said up to this pause (a stale preparation is dropped first)."""
        await self.drop("a newer pause")
        prep = Preparation(paused, self._clock())
        prep.task = asyncio.create_task(self._prepare(prep, list(earlier_pieces)), name="prepared-reply")
        self._current = prep

    async def _prepare(self, prep: Preparation, earlier_pieces: list[str]) -> None:
        try:
            started = self._clock()
            text = (await self._transcribe(prep.paused.samples)).strip()
            asr_ms = (self._clock() - started) * 1000
            prep.text = join_phrases([*earlier_pieces, text])  # Chinese and Japanese join without spaces
            if not prep.text:
                return
            prep.turn, reply = self._start_held(prep.text, prep.paused.end_s, {"asr_ms": asr_ms})
        finally:
            prep.ready.set()
        await reply

    async def adopt(self) -> Preparation | None:
        """The preparation, with its held turn and task, for the controller to take over; None if it has nothing.

        Waits for the preparation's ASR if it is still running (the turn would wait for its
        own ASR anyway). A preparation that found no words or failed is dropped.
        """
        prep = self._current
        if prep is None or prep.task is None:
            return None
        waiter = asyncio.ensure_future(prep.ready.wait())
        try:
            await asyncio.wait([waiter, prep.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if prep.turn is None or prep.task.done():
            await self.drop("no reply was prepared")
            return None
        self._current = None
        return prep

    async def drop(self, why: str) -> None:
        """Cancel the preparation in flight, unheard; says so (a miss) when it had begun a reply."""
        prep, self._current = self._current, None
        if prep is None or prep.task is None:
            return
        prep.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, SisyphusError):
            await asyncio.wait_for(asyncio.shield(prep.task), CANCEL_TIMEOUT_S)
        log.debug("prepared reply to %r dropped (%s)", prep.text, why)
        if prep.text:
            self._emit(PreemptiveReply(hit=False, text=prep.text))
