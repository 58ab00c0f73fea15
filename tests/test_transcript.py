"""The session transcript: JSONL lines written as events come, kept through crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sisyphus.errors import SisyphusError
from sisyphus.frames import (
    AssistantSaid,
    InputLevel,
    Notice,
    State,
    StateChanged,
    TurnLatency,
    UserSaid,
)
from sisyphus.transcript import TranscriptWriter, default_transcript_dir

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=timezone.utc)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _conversation() -> list[object]:
    return [
        StateChanged(State.LISTENING, 1),
        InputLevel(-20.0),
        UserSaid(1, "héllo ✓"),
        AssistantSaid(1, "Hi there.", interrupted=False),
        TurnLatency(1, 85.0, 320.0, 380.0, 512.0, tts_audible_ms=460.0),
        Notice("model loaded", "info"),
        StateChanged(State.SPEAKING, 2),
        Notice("endpoint slow", "warning"),
        AssistantSaid(2, "Once upon", interrupted=True, full_text="Once upon a time."),
        TurnLatency(2, asr_ms=90.0, extra={"vad_ms": 12.5}),
    ]


def test_events_become_typed_json_lines_written_before_close(tmp_path: Path) -> None:
    meta = {"voice": "vivian", "llm": "gpt-4o-mini", "models": {"asr": Path("/m/asr")}}
    writer = TranscriptWriter(tmp_path / "sessions", meta, clock=lambda: T0)
    assert writer.path.parent == tmp_path / "sessions"
    prefix = T0.astimezone().strftime("%Y%m%d-%H%M%S-")  # "20260304-050607-" in UTC
    assert writer.path.name.startswith(prefix)
    assert writer.path.suffix == ".jsonl" and len(writer.path.stem) == len(prefix) + 6
    for event in _conversation():
        writer.handle(event)
    # Not closed: this is what a crash leaves behind.
    lines = _read(writer.path)
    stamp = T0.astimezone().isoformat(timespec="milliseconds")
    assert lines == [
        {"type": "session", "voice": "vivian", "llm": "gpt-4o-mini",
         "models": {"asr": "/m/asr"}, "started": stamp},
        {"type": "user", "turn_id": 1, "text": "héllo ✓", "time": stamp},
        {"type": "assistant", "turn_id": 1, "text": "Hi there.", "interrupted": False,
         "full_text": "Hi there.", "time": stamp},
        {"type": "latency", "turn_id": 1, "asr_ms": 85.0, "llm_first_token_ms": 320.0,
         "tts_first_audio_ms": 380.0, "tts_audible_ms": 460.0, "voice_to_voice_ms": 512.0, "tts_rtf": None,
         "time": stamp},
        {"type": "notice", "level": "warning", "text": "endpoint slow", "turn_id": 2,
         "time": stamp},
        {"type": "assistant", "turn_id": 2, "text": "Once upon", "interrupted": True,
         "full_text": "Once upon a time.", "time": stamp},
        {"type": "latency", "turn_id": 2, "asr_ms": 90.0, "llm_first_token_ms": None,
         "tts_first_audio_ms": None, "tts_audible_ms": None, "voice_to_voice_ms": None, "tts_rtf": None,
         "extra": {"vad_ms": 12.5},
         "time": stamp},
    ]
    assert "héllo ✓" in writer.path.read_text(encoding="utf-8")  # readable, not \u-escaped


def test_close_adds_an_end_line_once_and_later_events_are_dropped(tmp_path: Path) -> None:
    writer = TranscriptWriter(tmp_path, {"type": "not-overridable", "voice": "x"})
    writer.handle(UserSaid(1, "hi"))
    writer.close("interrupted")
    writer.close("ended")
    writer.handle(UserSaid(2, "too late"))
    lines = _read(writer.path)
    assert [line["type"] for line in lines] == ["session", "user", "end"]
    assert lines[0]["voice"] == "x"
    assert lines[-1]["reason"] == "interrupted"
    datetime.fromisoformat(lines[-1]["time"])  # a valid ISO timestamp


def test_an_abandoned_writer_leaves_a_complete_file(tmp_path: Path) -> None:
    writer = TranscriptWriter(tmp_path, {"voice": "vivian"})
    for event in _conversation():
        writer.handle(event)
    path = writer.path
    del writer
    assert [line["type"] for line in _read(path)] == [
        "session", "user", "assistant", "latency", "notice", "assistant", "latency"
    ]


def test_two_sessions_in_the_same_second_get_two_files(tmp_path: Path) -> None:
    first = TranscriptWriter(tmp_path, {}, clock=lambda: T0)
    second = TranscriptWriter(tmp_path, {}, clock=lambda: T0)
    assert first.path != second.path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.path.name, second.path.name])


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(SisyphusError) as caught:
        TranscriptWriter(blocker / "sessions", {})
    assert caught.value.message.startswith(f"cannot write the session transcript in {blocker}")
    assert caught.value.hint == "set SISYPHUS_DATA_DIR to a writable folder"


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({"SISYPHUS_DATA_DIR": "/data/sis", "XDG_DATA_HOME": "/xdg"}, "linux",
         "/data/sis/sessions"),
        ({"XDG_DATA_HOME": "/xdg"}, "linux", "/xdg/sisyphus/sessions"),
        ({"XDG_DATA_HOME": "relative/xdg"}, "linux", "/home/u/.local/share/sisyphus/sessions"),
        ({}, "linux", "/home/u/.local/share/sisyphus/sessions"),
        ({}, "darwin", "/home/u/Library/Application Support/sisyphus/sessions"),
        ({"LOCALAPPDATA": "/c/Users/u/AppData/Local"}, "win32",
         "/c/Users/u/AppData/Local/sisyphus/sessions"),
        ({}, "win32", "/home/u/AppData/Local/sisyphus/sessions"),
    ],
)
def test_default_transcript_dir(env: dict, platform: str, expected: str) -> None:
    got = default_transcript_dir(env=env, platform=platform, home=Path("/home/u"))
    assert got == Path(expected)


def test_default_transcript_dir_reads_the_real_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SISYPHUS_DATA_DIR", "~/sis-data")
    assert default_transcript_dir() == Path.home() / "sis-data" / "sessions"


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from sisyphus.frames import AssistantSaid, TurnLatency, UserSaid
    from sisyphus.transcript import TranscriptWriter
    from sisyphus.ui.plain import PlainView
    from sisyphus.ui.view import Tee, run_view

    async def main(writer):
        queue = asyncio.Queue()
        task = asyncio.create_task(run_view(Tee(PlainView(sys.stderr), writer), queue))
        try:
            for event in [UserSaid(1, "hello"), AssistantSaid(1, "Hi.", False),
                          TurnLatency(1, 80.0, 300.0, 350.0, 500.0), UserSaid(2, "and")]:
                queue.put_nowait(event)
            await queue.join()
            print(writer.path, flush=True)
            await asyncio.Event().wait()  # the session goes on until Ctrl-C
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    writer = TranscriptWriter(Path(sys.argv[1]), {"voice": "vivian"})
    try:
        asyncio.run(main(writer))
    except KeyboardInterrupt:
        writer.close("interrupted")
    """
)


def _start_child(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    line = proc.stdout.readline()  # the child prints its path once the events are written
    assert line, proc.stderr.read()
    return proc, Path(line.strip())


@pytest.mark.timeout(60)
def test_ctrl_c_mid_session_keeps_every_line_and_marks_the_end(tmp_path: Path) -> None:
    proc, path = _start_child(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = _read(path)
    assert [(line["type"], line.get("text")) for line in lines] == [
        ("session", None), ("user", "hello"), ("assistant", "Hi."), ("latency", None),
        ("user", "and"), ("end", None),
    ]
    assert lines[-1]["reason"] == "interrupted"


@pytest.mark.timeout(60)
def test_a_killed_session_keeps_every_line_written(tmp_path: Path) -> None:
    proc, path = _start_child(tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    types = [line["type"] for line in _read(path)]
    assert types == ["session", "user", "assistant", "latency", "user"]


def test_lines_reach_the_disk_off_the_callers_thread(tmp_path: Path, monkeypatch) -> None:
    """Each line is with the OS when `handle` returns (another reader sees it); the fsync runs
    on the writer's own thread, never the caller's (the event loop), and once more at close."""
    import threading

    import sisyphus.transcript as transcript_module

    synced_on: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced_on.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(transcript_module.os, "fsync", fsync)
    writer = TranscriptWriter(tmp_path, {"voice": "vivian"})
    writer.handle(UserSaid(1, "hello"))
    assert '"text": "hello"' in writer.path.read_text(encoding="utf-8")
    writer.close()
    assert synced_on and threading.current_thread().name == synced_on[-1]  # the final sync, at close
    assert all(name == "sisyphus-transcript-sync" for name in synced_on[:-1])
