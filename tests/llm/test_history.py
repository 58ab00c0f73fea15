"""History: what the LLM is told about past exchanges."""

from __future__ import annotations

import pytest

from sisyphus.llm.history import INTERRUPTED_MARKER, History


def test_messages_are_system_past_exchanges_and_the_new_user_text() -> None:
    history = History("Be brief.", max_turns=5)
    history.add("What time is it?", "It is noon.")
    assert history.messages("Thanks!") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": "It is noon."},
        {"role": "user", "content": "Thanks!"},
    ]


def test_only_the_last_max_turns_exchanges_are_kept() -> None:
    history = History("sys", max_turns=2)
    for i in range(1, 5):
        history.add(f"q{i}", f"a{i}")
    assert len(history) == 2
    assert history.turns == [("q3", "a3"), ("q4", "a4")]
    contents = [m["content"] for m in history.messages("q5")]
    assert contents == ["sys", "q3", "a3", "q4", "a4", "q5"]


def test_interrupted_reply_keeps_only_what_was_played_plus_a_marker() -> None:
    history = History("sys", max_turns=3)
    history.add("Tell me a story.", "Once upon a time, there was ", interrupted=True)
    history.add("Stop.", "", interrupted=True)
    assert history.turns == [
        ("Tell me a story.", "Once upon a time, there was" + INTERRUPTED_MARKER),
        ("Stop.", INTERRUPTED_MARKER),
    ]
    roles = [m["role"] for m in history.messages("Go on.")]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]


def test_a_reply_with_nothing_played_keeps_the_exchange_alternating() -> None:
    history = History("sys", max_turns=3)
    history.add("Hello?", "")  # e.g. the LLM endpoint failed
    assert history.turns == [("Hello?", INTERRUPTED_MARKER)]


def test_zero_turns_and_empty_system_prompt() -> None:
    history = History("", max_turns=0)
    history.add("q1", "a1")
    assert len(history) == 0
    assert history.messages("q2") == [{"role": "user", "content": "q2"}]


def test_clear_and_invalid_max_turns() -> None:
    history = History("sys", max_turns=1)
    history.add("q", "a")
    history.clear()
    assert history.messages("x") == [{"role": "system", "content": "sys"}, {"role": "user", "content": "x"}]
    with pytest.raises(ValueError, match="max_turns must be >= 0, got -1"):
        History("sys", max_turns=-1)
