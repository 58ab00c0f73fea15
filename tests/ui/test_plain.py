"""PlainView: the exact lines a scripted session produces."""

from __future__ import annotations

import io

from sisyphus.frames import (
    AssistantSaid,
    InputLevel,
    Notice,
    State,
    StateChanged,
    TurnLatency,
    UserSaid,
)
from sisyphus.ui.events import (
    ConfigSummary,
    ModelLoaded,
    ModelUnloaded,
    StatusUpdate,
    VoiceChanged,
    config_summary,
)
from sisyphus.ui.plain import PlainView
from tests.ui.fakes import CPU_MEMORY, GIB, GPU_MEMORY, NO_CUDA, RTX, Clock


def _view() -> tuple[PlainView, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    return PlainView(out, clock=clock, memory_period_s=30.0), out, clock


def test_a_scripted_session_gives_one_line_per_event() -> None:
    view, out, clock = _view()
    view.start()
    view.handle(ConfigSummary((("device", "auto"), ("memory", "resident"))))
    view.handle(StatusUpdate(cuda=NO_CUDA, memory=CPU_MEMORY))
    clock.advance(4.5)
    view.handle(ModelLoaded("asr", "zai-org/GLM-ASR-Nano-2512", 4.3, "cpu"))
    view.handle(VoiceChanged("vivian", "preset"))
    view.handle(InputLevel(-20.0))
    view.handle(StateChanged(State.LISTENING, 1))
    clock.advance(1.0)
    view.handle(UserSaid(1, "hello"))
    view.handle(AssistantSaid(1, "Hi there.", interrupted=False))
    view.handle(TurnLatency(1, 85.4, 320.0, 380.2, 512.0))
    view.handle(AssistantSaid(2, "Well, the", interrupted=True, full_text="Well, the sky."))
    view.handle(TurnLatency(2, asr_ms=90.0, extra={"vad_ms": 12.0}))
    view.handle(TurnLatency(3))
    view.handle(Notice("endpoint down", "error"))
    view.handle(ModelUnloaded("tts-custom", "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"))
    view.handle(object())
    view.stop()
    assert out.getvalue().splitlines() == [
        "12:01:02.345 config: device auto, memory resident",
        "12:01:02.345 CUDA unavailable: torch was built without CUDA (torch 2.13.0+cpu); "
        "to fix: pip install torch --index-url https://download.pytorch.org/whl/cu128"
        " | memory: RSS 1.2 GiB · GPU n/a",
        "12:01:06.845 model loaded: asr zai-org/GLM-ASR-Nano-2512 on cpu in 4.3 s",
        "12:01:06.845 voice: vivian (preset)",
        "12:01:06.845 state: listening (turn 1)",
        "12:01:07.845 user: hello",
        "12:01:07.845 assistant: Hi there.",
        "12:01:07.845 latency turn 1: asr 85 ms, llm 320 ms, tts 380 ms, voice-to-voice 512 ms",
        "12:01:07.845 assistant (interrupted): Well, the",
        "12:01:07.845 latency turn 2: asr 90 ms, vad_ms 12 ms",
        "12:01:07.845 latency turn 3: no measurements",
        "12:01:07.845 error: endpoint down",
        "12:01:07.845 model unloaded: tts-custom Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice",
    ]


def test_status_lines_are_printed_on_change_and_memory_at_most_once_per_period() -> None:
    view, out, clock = _view()
    view.handle(StatusUpdate(cuda=RTX, memory=GPU_MEMORY))
    clock.advance(5)
    view.handle(StatusUpdate(cuda=RTX, memory=GPU_MEMORY))  # nothing changed
    grown = type(GPU_MEMORY)(3 * GIB, 9 * GIB, 10 * GIB, 12 * GIB)
    view.handle(StatusUpdate(memory=grown))  # changed, but only 5 s after the last line
    clock.advance(26)
    view.handle(StatusUpdate(memory=grown))  # 31 s: due
    view.handle(StatusUpdate(cuda=NO_CUDA))  # device lost
    assert out.getvalue().splitlines() == [
        "12:01:02.345 CUDA: NVIDIA GeForce RTX 3060, compute 8.6, torch 2.4.0+cu121, "
        "CUDA 12.1 | memory: RSS 2.0 GiB · GPU 8.4 GiB allocated / 9.0 GiB reserved / "
        "12.0 GiB total",
        "12:01:33.345 memory: RSS 3.0 GiB · GPU 9.0 GiB allocated / 10.0 GiB reserved / "
        "12.0 GiB total",
        "12:01:33.345 CUDA unavailable: torch was built without CUDA (torch 2.13.0+cpu); "
        "to fix: pip install torch --index-url https://download.pytorch.org/whl/cu128",
    ]


def test_model_loaded_line_reports_memory_after_the_load() -> None:
    view, out, _ = _view()
    view.handle(ModelLoaded("tts-custom", "/models/custom", 12.04, "cuda:0", GPU_MEMORY))
    assert out.getvalue() == (
        "12:01:02.345 model loaded: tts-custom /models/custom on cuda:0 in 12.0 s "
        "(RSS 2.0 GiB · GPU 8.4 GiB allocated / 9.0 GiB reserved / 12.0 GiB total)\n"
    )


def test_config_summary_lists_settings_without_the_api_key() -> None:
    from sisyphus.config import load_config

    config = load_config(env={"OPENAI_API_KEY": "sk-secret-123", "SISYPHUS_MEMORY": "swap"})
    summary = config_summary(config)
    view, out, _ = _view()
    view.handle(summary)
    line = out.getvalue()
    assert dict(summary.items)["memory"] == "swap"
    assert dict(summary.items)["asr"] == "zai-org/GLM-ASR-Nano-2512"
    assert "llm gpt-4o-mini @ https://api.openai.com/v1" in line
    assert "sk-secret-123" not in line
