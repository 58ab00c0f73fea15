"""`clone --record` and `say` to the speaker on virtual PulseAudio devices (real PortAudio)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sisyphus.audio.source import load_audio
from sisyphus.voices.record import level_meter
from tests.support.pulse import PulseDevices, pulse_available, pulse_devices
from tests.voices.helpers import library_of, run


@pytest.fixture(scope="module")
def pa() -> Iterator[PulseDevices]:
    with pulse_devices() as devices:
        yield devices


def test_level_meter() -> None:
    assert level_meter(np.zeros(512, dtype=np.float32)) == "[" + "." * 30 + "]  -60 dBFS"
    full = np.ones(512, dtype=np.float32)
    assert level_meter(full) == "[" + "#" * 30 + "]    0 dBFS"
    half = np.full(512, 0.1, dtype=np.float32)  # -20 dBFS: two thirds of the bar
    assert level_meter(half) == "[" + "#" * 20 + "." * 10 + "]  -20 dBFS"


@pytest.mark.audio
@pytest.mark.slow
@pytest.mark.skipif(not pulse_available(), reason="needs pulseaudio, pactl and parec")
def test_clone_from_the_microphone(pa: PulseDevices, config_file: Path, tiny_base: Path, speech_files) -> None:
    speech = load_audio(speech_files["wav22k"], 16000)
    # Speech keeps coming while the countdown runs and the recording goes on.
    pa.mic.play(np.concatenate([np.zeros(8000, dtype=np.float32), speech, speech]))
    result = run(config_file, "clone", "mic", "--record", "8", "--text", "The quick brown fox.")
    assert result.exit_code == 0, result.output
    for line in ("recording in 3...", "recording in 1...", "recording 8 s: speak now", "recording done"):
        assert line in result.stderr
    meters = [part for part in result.stderr.split("\r") if "dBFS" in part]
    assert len(meters) >= 200  # one per 32 ms block over 8 s
    assert meters[-1].startswith("  8.0 s [")
    info = library_of(config_file).get("mic")
    # 8 s recorded; at most the leading and trailing non-speech is trimmed.
    assert 6.0 < info.audio_seconds <= 8.0
    assert info.transcript == "The quick brown fox."


@pytest.mark.audio
@pytest.mark.skipif(not pulse_available(), reason="needs pulseaudio, pactl and parec")
def test_say_plays_the_whole_clip_through_the_speaker(pa: PulseDevices, config_file: Path, tmp_path: Path) -> None:
    # The same text with the config's fixed seed, written to a file, is what must be heard.
    assert run(config_file, "say", "ryan", "Hello there.", "--output", str(tmp_path / "ref.wav")).exit_code == 0
    reference = load_audio(tmp_path / "ref.wav", 24000)
    with pa.record_speaker() as recorder:
        assert recorder.wait_samples(2400, timeout_s=20)  # the monitor records before we play
        start = recorder.recorded
        result = run(config_file, "say", "ryan", "Hello there.")
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines()[-1] == "played 0.48 s of 'ryan'"
        assert recorder.wait_samples(recorder.recorded + 12000, timeout_s=20)  # and a bit after
        heard = recorder.samples()[start:]
    # Find the clip in the recording: all of it arrived, in order. Compared below 8 kHz:
    # PulseAudio resamples the null sink (44.1 kHz) and its filters eat the top octave,
    # where the random vocoder puts much of its energy.
    heard, reference = lowpass(heard, 8000), lowpass(reference, 8000)
    n = heard.size + reference.size
    xcorr = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(reference, n)), n)
    lag = int(np.argmax(xcorr[: heard.size - reference.size + 1]))
    segment = heard[lag : lag + reference.size]
    corr = float(np.dot(segment, reference) / (np.linalg.norm(segment) * np.linalg.norm(reference)))
    # Not 1.0: on a loaded 2-core machine ALSA's pulse plugin reports the odd underrun.
    assert corr > 0.8, corr
    assert 0.8 < float(np.std(segment) / np.std(reference)) < 1.2  # heard at its level


def lowpass(x: np.ndarray, cutoff_hz: float, rate_hz: int = 24000) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(x.size, 1 / rate_hz) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, x.size).astype(np.float32)
