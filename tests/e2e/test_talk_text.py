"""Text that models and servers produce, as `sisyphus talk` shows, speaks and records it.

Escape sequences in a reply must never reach the terminal (plain log or dashboard) while
the transcript keeps the raw text; credentials in the LLM URL are never shown or stored;
Chinese replies are recorded without invented spaces; a phrase cut by the TTS length
guard is recorded as far as it was played. The real CLI in a subprocess (the dashboard in
a pseudo-terminal), tiny models, a real LLM server on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
import threading

import pytest

from sisyphus.bench.llm_server import Behavior
from tests.e2e.harness import (
    REPO,
    of_type,
    plain_lines,
    run_typed,
    talk_env,
    transcript,
    wait_for_records,
)

pytestmark = pytest.mark.slow

HOSTILE = "Hello \x1b[2J\x1b]0;pwned\x07there. Bye\x9b31m now \u202eplease."
SAFE = "Hello there. Bye now please."  # what may be shown and spoken of HOSTILE


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _controls(text: str) -> list[str]:
    return sorted({ch for ch in text if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F or ch == "\u202e"})


def test_escape_sequences_never_reach_the_plain_log_and_the_transcript_keeps_them_escaped(tmp_path, server, config):
    server.script(Behavior(reply=HOSTILE))

    result = run_typed(config(tts__max_seconds_per_phrase=3.0), talk_env(tmp_path), ["say \x1b[31mred\x1b[0m"],
                       "--output", str(tmp_path / "out.wav"))  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert _controls(result.stdout) == [] and _controls(result.stderr) == []
    assert "pwned" not in result.stdout
    assert plain_lines(result.stdout, "user") == ["user: say red"]
    assert plain_lines(result.stdout, "assistant") == [f"assistant: {SAFE}"]
    records = transcript(tmp_path)  # parsed JSON: the raw text is all there
    assert of_type(records, "user")[0]["text"] == "say \x1b[31mred\x1b[0m"
    (reply,) = of_type(records, "assistant")
    assert reply["full_text"] == HOSTILE and reply["text"] == SAFE
    raw = next((tmp_path / "sessions").glob("*.jsonl")).read_text(encoding="utf-8")
    assert _controls(raw.replace("\n", "")) == []  # `cat` on the transcript is harmless too
    assert "\\u001b]0;pwned\\u0007" in raw and "\\u009b" in raw and "\\u202e" in raw


def test_escape_sequences_in_a_reply_never_reach_the_dashboard(tmp_path, server, config):
    server.script(Behavior(reply=HOSTILE))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**talk_env(tmp_path), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    command = [sys.executable, "-m", "sisyphus.cli", "talk", "--config", str(config(tts__max_seconds_per_phrase=3.0)),
               "--text", "--output", str(tmp_path / "out.wav")]  # fmt: skip
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    screen = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, screen), daemon=True)
    reader.start()
    try:
        os.write(master, b"hello\n")  # the terminal holds it until the session reads
        wait_for_records(tmp_path, lambda rs: bool(of_type(rs, "assistant")))
        os.write(master, b"/quit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
        os.close(master)
    assert b"pwned" not in screen and b"\x1b]0;" not in screen and b"\x1b[2J" not in screen
    assert "\x9b".encode() not in screen and "\u202e".encode() not in screen
    assert b"Hello there." in screen  # the dashboard did draw the reply


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            return
        if not data:
            return
        into += data


def test_credentials_in_the_llm_url_are_never_shown_or_stored(tmp_path, config):
    port = closed_port()
    url = f"http://alice:hunter2@127.0.0.1:{port}/v1?api_key=sk-query-secret&v=1"
    shown = f"http://***@127.0.0.1:{port}/v1?api_key=***&v=1"
    cfg = config(llm_url=url)

    result = run_typed(cfg, talk_env(tmp_path), ["hello"], "--output", str(tmp_path / "out.wav"))
    doctor = subprocess.run(
        [sys.executable, "-m", "sisyphus.cli", "doctor", "--config", str(cfg)],
        env={**talk_env(tmp_path), "COLUMNS": "300"},
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    stored = next((tmp_path / "sessions").glob("*.jsonl")).read_text(encoding="utf-8")
    for text in (result.stdout, result.stderr, stored, doctor.stdout, doctor.stderr):
        assert "hunter2" not in text and "sk-query-secret" not in text and "alice" not in text
    assert shown in plain_lines(result.stdout, "config")[0]
    (error,) = plain_lines(result.stdout, "error")
    assert f"LLM endpoint {shown} is unreachable" in error
    assert any(f"LLM endpoint {shown} is unreachable" in n["text"] for n in of_type(transcript(tmp_path), "notice"))
    assert f"LLM endpoint: LLM endpoint {shown} is unreachable" in doctor.stdout


def test_a_chinese_reply_is_recorded_without_spaces_between_its_phrases(tmp_path, server, config):
    reply = "你好。今天天气很好，我们去公园散步吧。"
    server.script(Behavior(reply=reply, chunk_chars=2), Behavior(reply="好的。"))

    result = run_typed(config(tts__max_seconds_per_phrase=4.0, voice__language="chinese"), talk_env(tmp_path),
                       ["天气怎么样", "谢谢"], "--output", str(tmp_path / "out.wav"))  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    replies = of_type(transcript(tmp_path), "assistant")
    assert [r["text"] for r in replies] == [reply, "好的。"]
    assert server.chat_requests[1].messages[-2] == {"role": "assistant", "content": reply}
    assert plain_lines(result.stdout, "assistant")[0] == f"assistant: {reply}"


def test_a_phrase_cut_by_the_length_guard_is_recorded_as_far_as_it_was_played(tmp_path, server, config):
    long_phrase = "One two three four five six seven eight nine ten eleven twelve."
    server.script(Behavior(reply=f"Hi. {long_phrase} Bye."), Behavior(reply="Ok."))

    # 0.8 s per phrase: enough for "Hi." and "Bye.", not for twelve words (random weights
    # never stop by themselves, so each phrase ends at the guard).
    result = run_typed(config(tts__max_seconds_per_phrase=0.8), talk_env(tmp_path), ["count", "again"],
                       "--output", str(tmp_path / "out.wav"))  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    first = of_type(transcript(tmp_path), "assistant")[0]
    assert first["full_text"] == f"Hi. {long_phrase} Bye."
    assert first["interrupted"] is False
    head, cut, tail = first["text"].partition("… ")
    assert cut and tail == "Bye.", first["text"]
    assert head.startswith("Hi. One") and long_phrase.startswith(head.removeprefix("Hi. ") + " ")
    assert len(head.split()) < 1 + 12
    # The LLM is told what the user heard.
    assert server.chat_requests[1].messages[-2] == {"role": "assistant", "content": first["text"]}
