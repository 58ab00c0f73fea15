"""The echo canceller's state and barge-ins, as the plain log, the dashboard and the transcript show them."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

from rich.console import Console

from sisyphus.frames import BargeIn, EchoStatus
from sisyphus.transcript import TranscriptWriter
from sisyphus.ui.dashboard import Dashboard
from sisyphus.ui.plain import PlainView
from tests.ui.fakes import Clock

EVENTS = [
    EchoStatus("on", "AEC3 echo canceller, noise suppression, high-pass filter"),
    EchoStatus("on", "AEC3 echo canceller", echo_reduction_db=31.4, echo_dbfs=-21.2, seconds=6.24),
    BargeIn(3, "paused"),
    BargeIn(3, "resumed", "Yeah.", speech_ms=420.0, pause_ms=118.0, vad_ms=224.0),
    BargeIn(4, "paused"),
    BargeIn(4, "cancelled", "Wait, one more question.", speech_ms=1800.0, pause_ms=95.0),
    EchoStatus("on", "AEC3 echo canceller", echo_reduction_db=None, seconds=2.0),
    EchoStatus("off", "the input is a file"),
]


def test_plain_lines_say_the_echo_reduction_and_what_each_barge_in_did() -> None:
    out = io.StringIO()
    view = PlainView(out, clock=Clock())
    for event in EVENTS:
        view.handle(event)
    assert out.getvalue().splitlines() == [
        "12:01:02.345 echo cancellation: on (AEC3 echo canceller, noise suppression, high-pass filter)",
        "12:01:02.345 echo cancellation: on: echo reduced by 31 dB over 6.2 s of reply (mic heard it at -21 dBFS)",
        "12:01:02.345 barge-in turn 3: reply paused",
        "12:01:02.345 barge-in turn 3: reply resumed after “Yeah.” (0.4 s of speech, quiet 118 ms after it began)",
        "12:01:02.345 barge-in turn 4: reply paused",
        "12:01:02.345 barge-in turn 4: reply cancelled by “Wait, one more question.” (1.8 s of speech, quiet 95 ms after it began)",
        "12:01:02.345 echo cancellation: on: no echo heard over 2.0 s of reply",
        "12:01:02.345 echo cancellation: off (the input is a file)",
    ]


def test_the_dashboard_shows_the_echo_figure_and_counts_barge_ins() -> None:
    console = Console(record=True, width=160, height=60, force_terminal=True, file=io.StringIO())
    dashboard = Dashboard(console=console)
    for event in EVENTS[:6]:
        dashboard.handle(event)
    console.print(dashboard.render())
    screen = console.export_text()
    assert "echo on, 31 dB less echo on the last reply   barge-ins 2 paused / 1 resumed / 1 cancelled" in screen
    # What each barge-in decided goes to the notices under the latency table.
    assert "info: barge-in turn 3: reply resumed after “Yeah.”" in screen
    assert "info: barge-in turn 4: reply cancelled by “Wait, one more question.”" in screen
    dashboard.handle(EVENTS[6])  # a reply without echo (headphones) keeps the last figure
    console.print(dashboard.render())
    assert "echo on, 31 dB less echo on the last reply" in console.export_text()


def test_the_transcript_records_echo_figures_and_barge_ins(tmp_path: Path) -> None:
    writer = TranscriptWriter(tmp_path, {"voice": "vivian"}, clock=lambda: datetime(2026, 1, 2, 3, 4, 5))
    for event in EVENTS[1:4]:
        writer.handle(event)
    writer.close()
    records = [json.loads(line) for line in writer.path.read_text().splitlines()]
    assert {k: records[1][k] for k in ("type", "state", "echo_reduction_db", "echo_dbfs", "seconds")} == {
        "type": "echo", "state": "on", "echo_reduction_db": 31.4, "echo_dbfs": -21.2, "seconds": 6.24,
    }  # fmt: skip
    assert [(r["type"], r["turn_id"], r["action"], r["text"]) for r in records[2:4]] == [
        ("barge_in", 3, "paused", ""), ("barge_in", 3, "resumed", "Yeah."),
    ]  # fmt: skip
    assert (records[3]["speech_ms"], records[3]["pause_ms"], records[3]["vad_ms"]) == (420.0, 118.0, 224.0)
