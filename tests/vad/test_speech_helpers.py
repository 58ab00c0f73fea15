"""The independent speech-boundary measure the VAD tests rely on, checked on known signals."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.support.speech import blocks, espeak_wav, timeline, voiced_span


def tone(seconds: float, rate_hz: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_voiced_span_finds_a_tone_inside_silence():
    clip = np.concatenate([np.zeros(4000, np.float32), tone(0.5), np.zeros(2400, np.float32)])
    start, end = voiced_span(clip)
    assert start == pytest.approx(0.25, abs=0.011)
    assert end == pytest.approx(0.75, abs=0.011)


def test_timeline_places_clips_at_their_offsets():
    audio, segments = timeline([0.5, tone(1.0), 0.25, tone(0.5)])
    assert len(audio) == int(2.25 * 16_000)
    assert [(s.start_s, s.end_s) for s in segments] == [(0.5, 1.5), (1.75, 2.25)]
    assert segments[1].voiced_start_s == pytest.approx(1.75, abs=0.011)


def test_espeak_wav_writes_16k_speech(tmp_path):
    path = tmp_path / "hello.wav"
    audio = espeak_wav("Hello world", path)
    on_disk, rate = sf.read(path, dtype="float32")
    assert rate == 16_000 and audio.dtype == np.float32
    assert 0.6 < len(audio) / rate < 2.0
    np.testing.assert_allclose(on_disk, audio, atol=1 / 32768)
    start, end = voiced_span(audio)
    assert end - start > 0.5 and np.abs(audio).max() > 0.1


def test_blocks_carry_the_time_of_their_last_sample():
    got = [(len(b), t) for b, t in blocks(np.zeros(1000, np.float32), 400, t0_s=10.0)]
    assert got == [(400, 10.0 + 399 / 16_000), (400, 10.0 + 799 / 16_000), (200, 10.0 + 999 / 16_000)]
