"""`sisyphus talk` started, fed and stopped the ways people do: paths that collide, signals
from a service manager or a closing terminal, typed input from a pipe.

The real CLI in a subprocess, tiny models, a real LLM server on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from tests.e2e.harness import (
    REPO,
    of_type,
    plain_lines,
    run_talk,
    run_typed,
    talk_command,
    talk_env,
    transcript,
    wait_for_records,
)

pytestmark = pytest.mark.slow


def _output_paths(tmp_path, recording, config_file):
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.wav").symlink_to(recording)
    os.link(recording, tmp_path / "hard.wav")
    (tmp_path / "config.wav").symlink_to(config_file)
    (tmp_path / "voices").mkdir()
    return {
        "the same path": (recording, "is the same file as --input: it would be overwritten"),
        "another spelling": (tmp_path / "sub" / ".." / "rec.wav", "is the same file as --input: it would"),
        "a symlink": (tmp_path / "link.wav", f"is the same file as --input ({recording})"),
        "a hard link": (tmp_path / "hard.wav", "is the same file as --input"),
        "the config file": (tmp_path / "config.wav", "is the same file as the config file"),
        "the voice library": (tmp_path / "voices" / "bob.wav", "is inside the voice library"),
    }


def test_an_output_that_would_replace_what_the_session_reads_is_refused_before_anything_loads(tmp_path, config):
    recording = tmp_path / "rec.wav"
    sf.write(recording, (0.1 * np.sin(np.arange(16000) / 10)).astype(np.float32), 16000)
    config_file = config()
    before = recording.read_bytes(), config_file.read_bytes()
    for name, (output, message) in _output_paths(tmp_path, recording, config_file).items():
        result = run_talk(
            config_file, talk_env(tmp_path), "--input", str(recording), "--output", str(output), timeout_s=60
        )
        assert result.returncode == 2, (name, result.stderr[-2000:])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: --output {output} "), (name, lines)
        assert message in lines[0], (name, lines)
        assert result.stdout == "", name  # nothing started: no view, no model load
        assert (recording.read_bytes(), config_file.read_bytes()) == before, name
        assert not (tmp_path / "sessions").exists(), name


def _wait_for_deltas(server: OpenAITestServer, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        requests = server.chat_requests
        if requests and requests[0].deltas_sent >= count:
            return
        time.sleep(0.05)  # the server thread counts deltas; bounded by the deadline
    raise AssertionError(f"the server never sent {count} deltas")


def _wait_for_audio(path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 4096:  # past the header: samples were played
            return
        time.sleep(0.05)  # the sink writes as it plays; bounded by the deadline
    raise AssertionError(f"{path} never received audio")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_mid_reply_end_the_session_like_ctrl_c(tmp_path, server, config, signum):
    reply = "Hello there. This reply never gets to its end."
    server.script(Behavior(reply=reply, chunk_chars=4, stall_after=5))  # "Hello there. This re", then silence
    proc = subprocess.Popen(
        talk_command(config(), "--text", "--output", str(tmp_path / "out.wav")), env=talk_env(tmp_path), cwd=REPO,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        proc.stdin.write("tell me something\n")
        proc.stdin.flush()  # stdin stays open: the session waits for more
        wait_for_records(tmp_path, lambda rs: bool(of_type(rs, "user")))
        _wait_for_deltas(server, 5)
        # Sent is not yet read: wait until the first phrase plays, which the client can only
        # have done after reading past it (on a loaded machine the signal could beat the deltas).
        _wait_for_audio(tmp_path / "out.wav")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert f"stopped ({signum.name}); transcript kept" in out
    records = transcript(tmp_path)
    (assistant,) = of_type(records, "assistant")
    assert assistant["interrupted"] is True and assistant["full_text"] == reply[:20]
    assert reply.startswith(assistant["text"])
    assert of_type(records, "end")[0]["reason"] == "interrupted"


def test_piped_quit_waits_for_the_reply_and_voice_switches_are_recorded(tmp_path, server, config):
    server.script(Behavior(reply="Hi there."), Behavior(reply="Fine, thanks."))
    lines = ["hello", "/voice ryan", "how are you", "/quit", "never read"]

    result = run_typed(config(tts__max_seconds_per_phrase=2.0), talk_env(tmp_path), lines,
                       "--output", str(tmp_path / "out.wav"))  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert [r.messages[-1]["content"] for r in server.chat_requests] == ["hello", "how are you"]
    records = transcript(tmp_path)
    replies = of_type(records, "assistant")
    assert [(r["text"], r["interrupted"]) for r in replies] == [("Hi there.", False), ("Fine, thanks.", False)]
    (voice,) = of_type(records, "voice")
    # The switch applies from the next phrase on, so it may land during the first reply.
    assert (voice["name"], voice["turn_id"]) == ("ryan", 1)
    kinds = [r["type"] for r in records if r["type"] in ("voice", "user")]
    assert kinds == ["user", "voice", "user"]
    assert of_type(records, "end")[0]["reason"] == "ended"


def test_many_piped_lines_are_all_answered_none_dropped(tmp_path, server, config):
    server.default = Behavior(reply="")  # each turn fails at once: an empty reply, no speech
    lines = [f"line {i}" for i in range(300)]  # more than the session's input queue holds

    result = run_typed(config(), talk_env(tmp_path), lines, "--output", str(tmp_path / "out.wav"))

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Exception" not in result.stderr, result.stderr[-3000:]
    assert [r.messages[-1]["content"] for r in server.chat_requests] == lines
    assert len(plain_lines(result.stdout, "error")) == 300



def test_a_reader_that_quits_the_plain_log_does_not_end_the_conversation(tmp_path, server, config):
    server.default = Behavior(reply="Fine.")
    proc = subprocess.Popen(
        talk_command(config(), "--text", "--output", str(tmp_path / "out.wav")), env=talk_env(tmp_path), cwd=REPO,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        proc.stdin.write("one\ntwo\nthree\n")
        proc.stdin.close()
        proc.stdout.readline()
        proc.stdout.close()  # as `sisyphus talk --plain | head -1` does
        err = proc.stderr.read()
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "Exception" not in err, err[-3000:]
    records = transcript(tmp_path)
    assert [r["text"] for r in of_type(records, "assistant")] == ["Fine.", "Fine.", "Fine."]
    assert of_type(records, "end")[0]["reason"] == "ended"
