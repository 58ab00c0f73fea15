"""run_view, Tee and make_view: how the event queue reaches the views."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from rich.console import Console

from sisyphus.frames import AssistantSaid, Notice, State, StateChanged, UserSaid
from sisyphus.transcript import TranscriptWriter
from sisyphus.ui.dashboard import Dashboard
from sisyphus.ui.plain import PlainView
from sisyphus.ui.view import Tee, View, make_view, run_view
from tests.ui.fakes import Clock

TIMEOUT_S = 5.0


class Recorder:
    """A view that remembers what it was asked to do."""

    def __init__(self, fail_on: type | None = None) -> None:
        self.calls: list[object] = []
        self.fail_on = fail_on

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def handle(self, event: object) -> None:
        if self.fail_on is not None and isinstance(event, self.fail_on):
            raise RuntimeError("drawing failed")
        self.calls.append(event)


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT_S)


def test_run_view_feeds_events_in_order_until_cancelled() -> None:
    async def scenario() -> list[object]:
        view, queue = Recorder(), asyncio.Queue()
        task = asyncio.create_task(run_view(view, queue))
        events = [StateChanged(State.LISTENING, 1), UserSaid(1, "hi"), object()]
        for event in events:
            queue.put_nowait(event)
        await asyncio.wait_for(queue.join(), TIMEOUT_S)
        assert view.calls == events
        await _cancel(task)
        return view.calls

    calls = asyncio.run(scenario())
    assert len(calls) == 3  # the owner starts and stops the view, not run_view


def test_events_queued_when_cancelled_are_still_handed_over() -> None:
    async def scenario() -> list[object]:
        view, queue = Recorder(), asyncio.Queue()
        task = asyncio.create_task(run_view(view, queue))
        queue.put_nowait(UserSaid(1, "first"))
        await asyncio.wait_for(queue.join(), TIMEOUT_S)
        late = [AssistantSaid(1, "one", False), AssistantSaid(1, "two", True)]
        for event in late:  # no await in between: the view task has not run yet
            queue.put_nowait(event)
        await _cancel(task)
        assert queue.empty()
        return view.calls

    calls = asyncio.run(scenario())
    assert calls == [UserSaid(1, "first"), AssistantSaid(1, "one", False), AssistantSaid(1, "two", True)]


def test_a_failing_view_is_logged_and_the_stream_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[object]:
        view, queue = Recorder(fail_on=Notice), asyncio.Queue()
        task = asyncio.create_task(run_view(view, queue))
        for event in [UserSaid(1, "a"), Notice("boom", "error"), UserSaid(2, "b")]:
            queue.put_nowait(event)
        await asyncio.wait_for(queue.join(), TIMEOUT_S)
        await _cancel(task)
        return view.calls

    with caplog.at_level(logging.ERROR, logger="sisyphus.ui.view"):
        calls = asyncio.run(scenario())
    assert calls == [UserSaid(1, "a"), UserSaid(2, "b")]
    assert "view failed on Notice" in caplog.text


def test_tee_feeds_the_screen_and_the_transcript_even_when_one_fails(tmp_path) -> None:
    out = io.StringIO()
    plain = PlainView(out, clock=Clock())
    broken = Recorder(fail_on=UserSaid)
    writer = TranscriptWriter(tmp_path, {"voice": "vivian"})
    tee = Tee(broken, plain, writer)
    tee.start()
    tee.handle(UserSaid(1, "hello"))
    tee.handle(AssistantSaid(1, "Hi.", False))
    tee.stop()
    assert out.getvalue().splitlines() == [
        "12:01:02.345 user: hello",
        "12:01:02.345 assistant: Hi.",
    ]
    assert broken.calls == ["start", AssistantSaid(1, "Hi.", False), "stop"]
    kinds = [json.loads(line)["type"] for line in writer.path.read_text().splitlines()]
    assert kinds == ["session", "user", "assistant"]


def test_make_view_picks_the_dashboard_only_for_an_interactive_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")  # whatever the machine running the tests has
    tty = Console(file=io.StringIO(), force_terminal=True)
    pipe_out = io.StringIO()
    pipe = Console(file=pipe_out)  # a StringIO is not a terminal
    assert isinstance(make_view(plain=False, console=tty), Dashboard)
    assert isinstance(make_view(plain=True, console=tty), PlainView)
    monkeypatch.setenv("TERM", "dumb")
    dumb = Console(file=io.StringIO(), force_terminal=True)
    assert isinstance(make_view(plain=False, console=dumb), PlainView)
    view = make_view(plain=False, console=pipe)
    assert isinstance(view, PlainView)
    assert isinstance(view, View)
    view.handle(UserSaid(1, "to the pipe"))
    assert pipe_out.getvalue().endswith(" user: to the pipe\n")
