"""`sisyphus talk` against an LLM server that streams what it should not.

Each bad turn must cost exactly that turn: one error line, the user's words and what was
heard kept in the transcript, and the next turn answered. The real CLI runs in a
subprocess with typed input (no ASR needed) against a real server on 127.0.0.1.
"""

from __future__ import annotations

import json

import pytest

from sisyphus.bench.llm_server import Behavior, chunk_event
from tests.e2e.harness import of_type, plain_lines, run_typed, talk_env, transcript

pytestmark = pytest.mark.slow

# (what the server sends, what the error line must say)
MALFORMED = [
    ((chunk_event("Fine. "), "{oops"), "the LLM stream sent data that is not JSON: {oops"),
    ((chunk_event("Fine. "), chunk_event(42)), "the LLM stream sent a delta whose content is a number, not text: 42"),
    ((chunk_event({"text": "hi"}),), 'a delta whose content is an object, not text: {"text": "hi"}'),
    (('{"choices": "abc"}',), 'a chunk whose choices are not a list: "abc"'),
    (("7",), "a chunk that is not a JSON object: 7"),
    (("null",), "a chunk that is not a JSON object: null"),
    (('{"choices": [{"index": 0, "delta": "hi"}]}',), 'a delta that is not a JSON object: "hi"'),
    (('{"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]}',), "a finish_reason that is not a string: 1"),
    (
        (chunk_event("Fine. "), b'{"choices": [{"delta": {"content": "\xff"}}]}'),
        "the LLM stream sent bytes that are not UTF-8",
    ),
]


def test_each_malformed_stream_costs_one_turn_and_one_error_line(tmp_path, server, config):
    bad = [Behavior(events=events) for events, _ in MALFORMED]
    # The good turn shows the session is still ready; the last turn is a bad one again,
    # so a failure at the very end of a session cannot change its exit code.
    server.script(*bad, Behavior(reply="All good."), bad[0])
    lines = [f"question {i}" for i in range(len(bad) + 2)]

    result = run_typed(config(), talk_env(tmp_path), lines, "--output", str(tmp_path / "out.wav"))

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "never retrieved" not in result.stderr, result.stderr[-3000:]
    expected = [message for _, message in MALFORMED] + [MALFORMED[0][1]]
    errors = plain_lines(result.stdout, "error")
    assert len(errors) == len(expected), errors
    for line, message in zip(errors, expected):
        assert message in line, (line, message)

    records = transcript(tmp_path)
    assert [u["text"] for u in of_type(records, "user")] == lines
    replies = of_type(records, "assistant")
    assert [r["turn_id"] for r in replies] == list(range(1, len(lines) + 1))
    heard = ["Fine." if events[0] == chunk_event("Fine. ") else "" for events, _ in MALFORMED]
    assert [r["text"] for r in replies] == [*heard, "All good.", "Fine."]
    assert [r["interrupted"] for r in replies] == [False] * len(lines)
    notices = [n for n in of_type(records, "notice") if n["level"] == "error"]
    assert [n["turn_id"] for n in notices] == [*range(1, len(bad) + 1), len(lines)]
    assert of_type(records, "end")[0]["reason"] == "ended"
    # The history kept what was heard, so the good turn's request alternates properly.
    good = server.chat_requests[len(bad)].messages
    assert good[-3:-1] == [{"role": "user", "content": "question 8"}, {"role": "assistant", "content": "Fine."}]


def test_a_body_that_is_no_stream_an_empty_reply_and_a_cut_reply_are_each_said(tmp_path, server, config):
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Whole answer."},
                               "finish_reason": "stop"}]}  # fmt: skip
    server.script(
        Behavior(body="<html><head><title>Proxy login</title></head><body>Sign in</body></html>"),
        Behavior(reply=""),
        Behavior(reply="", finish_reason="length"),
        Behavior(body=json.dumps(completion), content_type="application/json"),  # ignores stream: true
        Behavior(reply="It was a dark night.", finish_reason="length"),
        Behavior(events=(
            '{"choices": [{"index": 0, "delta": {"refusal": "I cannot help."}}]}', chunk_event(None, "stop")
        )),
    )
    lines = ["proxy", "empty", "thinking", "whole", "story", "refused"]

    result = run_typed(config(tts__max_seconds_per_phrase=2.0), talk_env(tmp_path), lines,
                       "--output", str(tmp_path / "out.wav"))  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    errors = plain_lines(result.stdout, "error")
    assert len(errors) == 3, errors
    assert "answered HTTP 200 with text/html, not an event stream: <html><head><title>Proxy login" in errors[0]
    assert "the LLM sent an empty reply (finish_reason: stop)" in errors[1]
    assert "the LLM used all of llm.max_tokens (512) before writing any text" in errors[2]
    warnings = plain_lines(result.stdout, "warning")
    assert warnings == ["warning: the reply was cut short at llm.max_tokens; raise llm.max_tokens for longer replies"]

    records = transcript(tmp_path)
    replies = of_type(records, "assistant")
    assert [r["text"] for r in replies] == ["", "", "", "Whole answer.", "It was a dark night.", "I cannot help."]
    assert [r.get("finish_reason") for r in replies] == [None, None, None, "stop", "length", "stop"]
    cut = [n for n in of_type(records, "notice") if n["level"] == "warning"]
    assert [(n["turn_id"], n["text"]) for n in cut] == [(5, warnings[0].removeprefix("warning: "))]
