"""The figures both views share."""

from __future__ import annotations

import math

import pytest

from sisyphus.frames import TurnLatency
from sisyphus.ui.events import ModelsLoaded
from sisyphus.ui.format import clamp_dbfs, fmt_bytes, latency_line, memory_line, models_line


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 KiB"),
        (1536, "2 KiB"),
        (5 * (1 << 20), "5 MiB"),
        ((1 << 30) - 1, "1024 MiB"),
        (1 << 30, "1.0 GiB"),
        (int(11.94 * (1 << 30)), "11.9 GiB"),
        (None, "?"),
        (-1, "?"),
        (True, "?"),
    ],
)
def test_fmt_bytes(value: object, text: str) -> None:
    assert fmt_bytes(value) == text


def test_memory_line_without_a_gpu_or_with_missing_fields() -> None:
    assert memory_line({"rss_bytes": None}) == "RSS ? · GPU n/a"
    assert memory_line({"rss_bytes": 1 << 30, "gpu_total_bytes": 0}) == "RSS 1.0 GiB · GPU n/a"
    assert memory_line({"rss_bytes": 1 << 30, "gpu_total_bytes": 4 << 30}) == (
        "RSS 1.0 GiB · GPU ? allocated / ? reserved / 4.0 GiB total"
    )


def test_latency_line_rounds_and_keeps_milestone_order() -> None:
    event = TurnLatency(4, asr_ms=84.5, voice_to_voice_ms=1499.6, llm_first_token_ms=300.0)
    assert latency_line(event) == "asr 84 ms, llm 300 ms, voice-to-voice 1500 ms"
    heard = TurnLatency(5, tts_first_audio_ms=31.2, voice_to_voice_ms=900.0, tts_audible_ms=112.6)
    assert latency_line(heard) == "tts 31 ms, audible 113 ms, voice-to-voice 900 ms"


def test_models_line() -> None:
    assert models_line(ModelsLoaded(())) == "none"
    assert models_line(ModelsLoaded((), "cuda", "bf16")) == "none"
    assert models_line(ModelsLoaded(("asr", "tts_base"))) == "asr, tts_base"
    assert models_line(ModelsLoaded(("asr",), "cuda:1", "", (("asr", 2.25), ("x", 1.0)))) == (
        "asr (2.2 s) on cuda:1"
    )


def test_clamp_dbfs() -> None:
    assert [clamp_dbfs(v) for v in (-math.inf, math.nan, -75.0, -12.5, 3.0)] == [
        -60.0, -60.0, -60.0, -12.5, 0.0
    ]
