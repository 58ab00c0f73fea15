"""How each turn ended and what became of prepared replies, in --plain, the dashboard and the transcript."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

from rich.console import Console

from sisyphus.frames import PreemptiveReply, TurnDecision, TurnEnded, UserSaid
from sisyphus.transcript import TranscriptWriter
from sisyphus.ui.dashboard import Dashboard
from sisyphus.ui.plain import PlainView
from tests.ui.fakes import Clock

COMPLETE = TurnDecision("complete", 224.0, 0.934, 12.4)
INCOMPLETE = TurnDecision("incomplete", 1504.0, 0.071, 11.0)
SILENCE = TurnDecision("silence", 416.0)
MISS = PreemptiveReply(hit=False, text="I'd like to book a table for, um, somewhere quiet near the river")
HIT = PreemptiveReply(hit=True, text="book a table", turn_id=2, head_start_ms=180.4)


def test_plain_prints_each_decision_and_each_hit_or_miss():
    out = io.StringIO()
    view = PlainView(out, clock=Clock())
    for event in (TurnEnded(1, COMPLETE), TurnEnded(2, INCOMPLETE), TurnEnded(3, SILENCE),
                  TurnEnded(4, TurnDecision("input ended", 30.0)), MISS, HIT):
        view.handle(event)
    assert [line.split(" ", 1)[1] for line in out.getvalue().splitlines()] == [
        "end of turn 1: complete (Smart Turn 0.93) after 224 ms of silence, model 12 ms",
        "end of turn 2: incomplete (Smart Turn 0.07): waited 1504 ms of silence, model 11 ms",
        "end of turn 3: silence after 416 ms of silence",
        "end of turn 4: input ended",
        "preemptive miss: the reply prepared after “I'd like to book a table for, um, somew…” was dropped"
        " unheard",
        "preemptive hit (turn 2): the reply prepared 180 ms before the end of turn plays",
    ]


def test_the_dashboard_notes_each_turn_and_counts_hits_and_misses():
    console = Console(record=True, width=120, height=50, force_terminal=True, file=io.StringIO())
    dash = Dashboard(console=console)
    for event in (UserSaid(1, "so the thing is"), TurnEnded(1, INCOMPLETE), MISS, UserSaid(2, "book a table"),
                  TurnEnded(2, COMPLETE), HIT):
        dash.handle(event)
    console.print(dash.render())
    screen = console.export_text()
    assert "you      so the thing is [incomplete 0.07]" in screen
    assert "you      book a table [complete 0.93 · prepared reply]" in screen
    assert "end of turn 2: complete (Smart Turn 0.93) after 224 ms of silence, model 12 ms" in screen
    assert "prepared replies 1 hit, 1 miss — hit (turn 2): the reply prepared 180 ms before the end of turn plays" \
        in screen


def test_the_transcript_records_decisions_and_prepared_replies(tmp_path):
    writer = TranscriptWriter(tmp_path, {}, clock=lambda: datetime(2026, 3, 4, tzinfo=timezone.utc))
    for event in (MISS, UserSaid(1, "book a table"), TurnEnded(1, COMPLETE), HIT):
        writer.handle(event)
    writer.close()
    records = [json.loads(line) for line in writer.path.read_text().splitlines()]
    body = [{k: v for k, v in r.items() if k != "time"} for r in records[1:-1]]
    assert body == [
        {"type": "preempt", "turn_id": None, "hit": False, "text": MISS.text, "head_start_ms": None},
        {"type": "user", "turn_id": 1, "text": "book a table"},
        {"type": "turn_end", "turn_id": 1, "reason": "complete", "silence_ms": 224.0, "probability": 0.934,
         "model_ms": 12.4},
        {"type": "preempt", "turn_id": 2, "hit": True, "text": "book a table", "head_start_ms": 180.4},
    ]
