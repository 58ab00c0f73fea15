"""Dashboard: what the screen shows after a stream of events (drawn without Live), and Live."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from rich.console import Console

from sisyphus.frames import (
    AssistantSaid,
    InputLevel,
    Notice,
    State,
    StateChanged,
    TurnLatency,
    UserSaid,
)
from sisyphus.ui.dashboard import Dashboard
from sisyphus.ui.events import ConfigSummary, CudaUpdate, MemoryUpdate, ModelsLoaded, VoiceChanged
from tests.ui.fakes import CPU_MEMORY, GPU_MEMORY, NO_CUDA, RTX


def _dashboard(height: int = 60, **kwargs: int) -> Dashboard:
    console = Console(
        record=True, width=100, height=height, force_terminal=True, file=io.StringIO()
    )
    return Dashboard(console=console, **kwargs)


def _screen(dashboard: Dashboard) -> str:
    dashboard.console.print(dashboard.render())
    return dashboard.console.export_text()


def _row(screen: str, first_cell: str) -> list[str]:
    """The cells of the latency table row that starts with `first_cell`."""
    for line in screen.splitlines():
        cells = line.strip("│ ").split()
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in\n{screen}")


def test_a_session_shows_state_voice_models_cuda_memory_transcript_and_latency() -> None:
    dash = _dashboard(max_lines=12)
    for event in [
        ConfigSummary(("device: auto, memory: resident", "LLM: gpt-4o-mini at http://x/v1")),
        CudaUpdate(NO_CUDA),
        MemoryUpdate(CPU_MEMORY),
        ModelsLoaded(
            ("asr", "tts_custom"), "cpu", "float32", (("asr", 4.3), ("tts_custom", 11.96))
        ),
        VoiceChanged("vivian", "preset"),
        StateChanged(State.SPEAKING, 2),
        UserSaid(1, "hello"),
        AssistantSaid(1, "Hi there.", interrupted=False),
        UserSaid(2, "tell me [bold]a story[/bold]"),
        AssistantSaid(2, "Once upon", interrupted=True, full_text="Once upon a time."),
        TurnLatency(1, 85.0, 320.0, 380.0, 512.0, tts_rtf=0.25, tts_audible_ms=461.0),
        TurnLatency(2, 90.0, 400.0, None, 700.0),
        Notice("endpoint slow", "warning"),
        object(),
    ]:
        dash.handle(event)
    screen = _screen(dash)
    assert "state SPEAKING   turn 2   voice vivian (preset)" in screen
    assert "models asr (4.3 s), tts_custom (12.0 s) on cpu, float32" in screen
    assert "device: auto, memory: resident" in screen
    assert "LLM: gpt-4o-mini at http://x/v1" in screen
    assert "CUDA unavailable: torch was built without CUDA (torch 2.13.0+cpu)" in screen
    assert "to fix: pip install torch --index-url https://download.pytorch.org/whl/cu128" in screen
    assert "RSS 1.2 GiB · GPU n/a" in screen
    assert re.search(r"you +hello", screen)
    assert re.search(r"sisyphus +Hi there\.", screen)
    # User text is shown as typed, never read as rich markup.
    assert re.search(r"you +tell me \[bold\]a story\[/bold\]", screen)
    assert re.search(r"sisyphus +Once upon \[interrupted\]", screen)
    assert "Hi there. [interrupted]" not in screen
    assert _row(screen, "turn") == [
        "turn", "asr", "first", "token", "first", "audio", "audible", "voice-to-voice", "TTS", "RTF"
    ]
    assert _row(screen, "1") == ["1", "85", "320", "380", "461", "512", "0.25"]
    assert _row(screen, "2") == ["2", "90", "400", "—", "—", "700", "—"]
    assert _row(screen, "median") == ["median", "88", "360", "380", "461", "606"]
    assert "warning: endpoint slow" in screen


def test_cuda_and_gpu_memory_when_available() -> None:
    dash = _dashboard()
    dash.handle(CudaUpdate(RTX))
    dash.handle(MemoryUpdate(GPU_MEMORY))
    screen = _screen(dash)
    assert "CUDA: NVIDIA GeForce RTX 3060, compute 8.6, torch 2.4.0+cu121, CUDA 12.1" in screen
    assert "RSS 2.0 GiB · GPU 8.4 GiB allocated / 9.0 GiB reserved / 12.0 GiB total" in screen
    assert "to fix" not in screen


def test_before_any_event_the_screen_says_what_is_pending() -> None:
    screen = _screen(_dashboard())
    assert "state IDLE   turn 0   voice —" in screen
    assert "models pending" in screen
    assert "CUDA status pending" in screen
    assert "memory pending" in screen
    assert "(nothing said yet)" in screen
    assert "mic " + "░" * 30 + " no input" in screen
    assert "median" not in screen


def test_input_meter_follows_the_level() -> None:
    dash = _dashboard()
    dash.handle(InputLevel(-30.0))
    assert "mic " + "█" * 15 + "░" * 15 + " -30 dBFS" in _screen(dash)
    dash.handle(InputLevel(-3.0))
    assert "mic " + "█" * 28 + "░" * 2 + " -3 dBFS" in _screen(dash)
    dash.handle(InputLevel(float("-inf")))
    assert "mic " + "░" * 30 + " -inf dBFS" in _screen(dash)
    dash.handle(InputLevel(4.0))  # clipping input is drawn full scale
    assert "mic " + "█" * 30 + " 0 dBFS" in _screen(dash)


def test_transcript_keeps_the_last_max_lines_and_latency_the_last_rows() -> None:
    dash = _dashboard(max_lines=4, latency_rows=2)
    for turn in range(1, 7):
        dash.handle(UserSaid(turn, f"question {turn:02d}"))
        dash.handle(TurnLatency(turn, voice_to_voice_ms=100.0 * turn))
    screen = _screen(dash)
    assert [f"question {t:02d}" in screen for t in range(1, 7)] == [False] * 2 + [True] * 4
    assert _row(screen, "5")[-2:] == ["500", "—"] and _row(screen, "6")[-2:] == ["600", "—"]
    assert not any(line.strip("│ ").startswith("4 ") for line in screen.splitlines())
    # Medians cover the whole session, not just the rows shown: median(100..600) = 350.
    assert _row(screen, "median") == ["median", "—", "—", "—", "—", "350"]


def test_the_models_line_follows_swaps_and_the_voice_follows_changes() -> None:
    dash = _dashboard()
    dash.handle(ModelsLoaded(("asr", "tts_custom"), "cuda:0", "bf16"))
    dash.handle(VoiceChanged("vivian", "preset"))
    dash.handle(ModelsLoaded(("tts_base",), "cuda:0", "bf16"))
    dash.handle(VoiceChanged("bob", "cloned"))
    screen = _screen(dash)
    assert "models tts_base on cuda:0, bf16" in screen
    assert "tts_custom" not in screen and "models asr" not in screen  # swapped out
    assert "voice bob (cloned)" in screen
    assert "vivian" not in screen


def test_a_small_terminal_keeps_latency_and_notices_and_shows_the_newest_lines() -> None:
    dash = _dashboard(height=24)
    dash.handle(CudaUpdate(RTX))
    dash.handle(MemoryUpdate(GPU_MEMORY))
    for turn in range(1, 9):
        dash.handle(UserSaid(turn, f"question {turn:02d}"))
        dash.handle(TurnLatency(turn, voice_to_voice_ms=float(turn)))
    dash.handle(Notice("last notice"))
    screen = _screen(dash)
    assert len(screen.splitlines()) == 23  # one row is left for the cursor
    assert _row(screen, "median")[-1] == "4"  # median(1..8) = 4.5, shown rounded to even
    assert screen.rstrip().endswith("info: last notice")
    shown = [turn for turn in range(1, 9) if f"question {turn:02d}" in screen]
    assert shown == list(range(9 - len(shown), 9)) and 3 <= len(shown) < 8

    dash.handle(AssistantSaid(9, " ".join(f"w{i:03d}" for i in range(400)) + " END", False))
    screen = _screen(dash)
    assert len(screen.splitlines()) <= 23
    assert "question" not in screen  # the long reply took the whole panel...
    assert re.search(r"sisyphus +…", screen)  # ...cut at its start
    assert "w399 END" in screen


def test_live_start_and_stop_leave_the_final_screen_on_the_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True)
    dash = Dashboard(console=console, refresh_hz=4)
    dash.start()
    dash.handle(StateChanged(State.THINKING, 7))
    dash.handle(UserSaid(7, "what time is it"))
    dash.stop()
    dash.stop()  # idempotent
    text = out.getvalue()
    assert "THINKING" in text
    assert "what time is it" in text


def test_log_records_go_above_the_live_display_and_the_handler_is_restored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = logging.StreamHandler(sys.stderr)  # what logging.basicConfig sets up
    original = handler.stream
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        out = io.StringIO()
        dash = Dashboard(console=Console(file=out, width=100, force_terminal=True))
        dash.start()
        logging.getLogger("sisyphus.test").warning("endpoint is slow")
        dash.stop()
    finally:
        root.removeHandler(handler)
    assert handler.stream is original
    assert "endpoint is slow" in out.getvalue()
    assert "endpoint is slow" not in capsys.readouterr().err
