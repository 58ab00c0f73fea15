"""The reference checks on real espeak-ng speech: trimming, and each refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sisyphus.errors import VoiceError
from sisyphus.voices.checks import RATE_HZ, check_reference, speech_spans
from tests.voices.helpers import read_24k


@pytest.mark.parametrize("name", ["wav22k", "ogg16k", "wav48k_24bit"])
def test_good_speech_is_kept_whole(speech_files: dict[str, Path], name: str) -> None:
    samples = read_24k(speech_files[name])
    checked = check_reference(samples, name)
    # espeak starts and ends on speech: at most the 0.2 s pad beyond Silero's spans is cut.
    assert checked.samples.size / RATE_HZ == pytest.approx(checked.seconds)
    assert 6.5 < checked.seconds <= samples.size / RATE_HZ
    assert checked.trimmed_start_s + checked.trimmed_end_s < 0.25
    assert -25 < checked.speech_dbfs < -15
    assert checked.clipped_fraction == 0.0
    assert checked.warnings == []


def test_leading_and_trailing_silence_is_trimmed(speech_files: dict[str, Path]) -> None:
    padded = read_24k(speech_files["flac44k_stereo_padded"])
    plain = read_24k(speech_files["wav22k"])
    checked = check_reference(padded, "padded")
    # 1.5 s of silence was added at each end; all but the 0.2 s pad (and Silero's 30 ms) goes.
    assert 1.2 < checked.trimmed_start_s < 1.5
    assert 1.2 < checked.trimmed_end_s < 1.5
    assert abs(checked.seconds - plain.size / RATE_HZ) < 0.5
    assert float(np.max(np.abs(checked.samples))) > 0.5


def test_short_but_usable_speech_warns(speech_files: dict[str, Path]) -> None:
    checked = check_reference(read_24k(speech_files["four_seconds"]), "four.wav")
    assert checked.warnings == ["four.wav has 4.0 s of speech; voices clone best from 5-15 s"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("short", "short has only 1.0 s of speech, at least 3 s is needed"),
        ("long", "long has 37.0 s of speech, at most 30 s is allowed"),
        ("silent", "no speech found in silent"),
        ("quiet", "quiet is too quiet (speech at -68 dBFS, at least -40 dBFS is needed)"),
        ("clipped", "clipped is clipped (9.13% of samples at full scale)"),
    ],
)
def test_bad_references_are_refused(speech_files: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(VoiceError) as caught:
        check_reference(read_24k(speech_files[name]), name)
    assert caught.value.message == message
    assert caught.value.hint


def test_noise_and_hum_are_not_speech() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(6 * RATE_HZ) / RATE_HZ
    hum = (0.3 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    noise = (0.05 * rng.standard_normal(t.size)).astype(np.float32)
    assert speech_spans(hum) == []
    assert speech_spans(noise) == []
    with pytest.raises(VoiceError, match="no speech found in noise"):
        check_reference(noise, "noise")


def test_non_finite_samples_are_refused() -> None:
    samples = np.zeros(5 * RATE_HZ, dtype=np.float32)
    samples[100] = np.nan
    with pytest.raises(VoiceError, match="invalid"):
        check_reference(samples, "nan.wav")
