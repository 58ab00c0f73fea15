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
from sisyphus.ui.events import ConfigSummary, CudaUpdate, MemoryUpdate, ModelsLoaded, VoiceChanged
from sisyphus.ui.plain import PlainView
from tests.ui.fakes import CPU_MEMORY, GIB, GPU_MEMORY, NO_CUDA, RTX, Clock, Memory


def _view() -> tuple[PlainView, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    return PlainView(out, clock=clock, memory_period_s=30.0), out, clock


def test_a_scripted_session_gives_one_line_per_event() -> None:
    view, out, clock = _view()
    view.start()
    view.handle(ConfigSummary(("device: auto, memory: resident", "LLM: gpt-4o-mini")))
    view.handle(CudaUpdate(NO_CUDA))
    view.handle(MemoryUpdate(CPU_MEMORY))
    clock.advance(4.5)
    view.handle(ModelsLoaded(("asr",), "cpu", "float32", (("asr", 4.3),)))
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
    view.handle(Notice("loaded tts_custom in 12.0 s"))
    view.handle(object())
    view.stop()
    assert out.getvalue().splitlines() == [
        "12:01:02.345 config: device: auto, memory: resident; LLM: gpt-4o-mini",
        "12:01:02.345 CUDA unavailable: torch was built without CUDA (torch 2.13.0+cpu); "
        "to fix: pip install torch --index-url https://download.pytorch.org/whl/cu128",
        "12:01:02.345 memory: RSS 1.2 GiB · GPU n/a",
        "12:01:06.845 models: asr (4.3 s) on cpu, float32",
        "12:01:06.845 voice: vivian (preset)",
        "12:01:06.845 state: listening (turn 1)",
        "12:01:07.845 user: hello",
        "12:01:07.845 assistant: Hi there.",
        "12:01:07.845 latency turn 1: asr 85 ms, llm 320 ms, tts 380 ms, voice-to-voice 512 ms",
        "12:01:07.845 assistant (interrupted): Well, the",
        "12:01:07.845 latency turn 2: asr 90 ms, vad_ms 12 ms",
        "12:01:07.845 latency turn 3: no measurements",
        "12:01:07.845 error: endpoint down",
        "12:01:07.845 info: loaded tts_custom in 12.0 s",
    ]


def test_periodic_updates_are_printed_only_when_they_change() -> None:
    view, out, clock = _view()
    view.handle(CudaUpdate(RTX))
    view.handle(MemoryUpdate(GPU_MEMORY))
    view.handle(ModelsLoaded(("asr", "tts_custom"), "cuda:0", "bfloat16"))
    clock.advance(5)
    view.handle(CudaUpdate(RTX))  # nothing changed: no lines
    view.handle(MemoryUpdate(GPU_MEMORY))
    view.handle(ModelsLoaded(("asr", "tts_custom"), "cuda:0", "bfloat16"))
    grown = Memory(3 * GIB, 9 * GIB, 10 * GIB, 12 * GIB)
    view.handle(MemoryUpdate(grown))  # changed, but only 5 s after the last memory line
    view.handle(ModelsLoaded(("tts_base",), "cuda:0", "bfloat16"))  # swapped: printed at once
    clock.advance(26)
    view.handle(MemoryUpdate(grown))  # 31 s: due
    view.handle(ModelsLoaded((), "cuda:0", "bfloat16"))
    view.handle(CudaUpdate(NO_CUDA))  # device lost
    assert out.getvalue().splitlines() == [
        "12:01:02.345 CUDA: NVIDIA GeForce RTX 3060, compute 8.6, torch 2.4.0+cu121, CUDA 12.1",
        "12:01:02.345 memory: RSS 2.0 GiB · GPU 8.4 GiB allocated / 9.0 GiB reserved / "
        "12.0 GiB total",
        "12:01:02.345 models: asr, tts_custom on cuda:0, bfloat16",
        "12:01:07.345 models: tts_base on cuda:0, bfloat16",
        "12:01:33.345 memory: RSS 3.0 GiB · GPU 9.0 GiB allocated / 10.0 GiB reserved / "
        "12.0 GiB total",
        "12:01:33.345 models: none",
        "12:01:33.345 CUDA unavailable: torch was built without CUDA (torch 2.13.0+cpu); "
        "to fix: pip install torch --index-url https://download.pytorch.org/whl/cu128",
    ]


def test_small_figures_and_missing_fields_are_still_readable() -> None:
    view, out, _ = _view()
    view.handle(MemoryUpdate(Memory(rss_bytes=300 * (1 << 20), gpu_allocated_bytes=512 * 1024,
                                    gpu_reserved_bytes=2 << 20, gpu_total_bytes=12 * GIB)))
    # A mapping works as well as an object; missing fields show "?".
    view.handle(CudaUpdate({"available": True, "device_name": "H100", "capability": "9.0"}))
    view.handle(VoiceChanged("bob"))
    assert out.getvalue().splitlines() == [
        "12:01:02.345 memory: RSS 300 MiB · GPU 512 KiB allocated / 2 MiB reserved / "
        "12.0 GiB total",
        "12:01:02.345 CUDA: H100, compute 9.0, torch ?, CUDA ?",
        "12:01:02.345 voice: bob",
    ]
