"""The audible-first-audio detector on constructed audio with a known first loud sample."""

from __future__ import annotations

import numpy as np
import pytest

from sisyphus.tts.audible import AUDIBLE_DBFS, AudibleTimer, first_audible

RATE = 24000
FRAME = 1920  # one 80 ms codec frame


def reply(first_loud: int, total: int = 4 * FRAME, *, hiss_dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    """Hiss below the threshold, then a 220 Hz tone at −20 dBFS from sample `first_loud` on.

    The tone starts at phase 90°, so its first sample is its peak and is the first loud one.
    """
    rng = np.random.default_rng(seed)
    hiss = 10 ** (hiss_dbfs / 20)
    audio = rng.uniform(-hiss, hiss, total).astype(np.float32)
    t = np.arange(total - first_loud) / RATE
    audio[first_loud:] = 0.1 * np.cos(2 * np.pi * 220 * t)
    return audio


def test_threshold_is_minus_50_dbfs_of_full_scale():
    level = 10 ** (AUDIBLE_DBFS / 20)  # 0.00316
    quiet = np.full(100, 0.999 * level, np.float32)
    assert first_audible(quiet) is None
    quiet[37] = -1.01 * level  # negative samples count by magnitude
    assert first_audible(quiet) == 37
    assert first_audible(np.zeros(0, np.float32)) is None
    assert first_audible(quiet, threshold_dbfs=-40.0) is None


@pytest.mark.parametrize("first_loud", [0, 1, 1500, FRAME, 2 * FRAME + 7])
def test_first_audible_finds_the_first_loud_sample_under_hiss(first_loud):
    assert first_audible(reply(first_loud)) == first_loud


def test_a_silent_first_frame_is_heard_one_frame_after_the_first_chunk():
    """First chunk (2 frames) arrives 30 ms after the phrase; its first frame is near-silent."""
    audio = reply(FRAME + 240)  # loud from 90 ms into the reply
    timer = AudibleTimer(RATE, start_s=10.0)
    assert timer.add(audio[: 2 * FRAME], arrived_s=10.030) == pytest.approx(0.030 + 0.090)
    timer.add(audio[2 * FRAME :], arrived_s=10.200)
    assert timer.audible_ms == pytest.approx(120.0)


def test_playback_runs_on_and_an_underrun_starts_at_arrival():
    timer = AudibleTimer(RATE, start_s=0.0)
    silent = np.zeros(FRAME, np.float32)
    assert timer.add(silent, arrived_s=0.050) is None  # plays 50..130 ms
    assert timer.add(silent, arrived_s=0.100) is None  # arrives in time: plays 130..210 ms
    assert timer.add(np.zeros(0, np.float32), arrived_s=0.150) is None
    loud = reply(480, total=FRAME)
    assert timer.add(loud, arrived_s=0.400) == pytest.approx(0.400 + 0.020)  # late: plays from 400 ms
    assert timer.add(reply(0, total=FRAME), arrived_s=0.5) == pytest.approx(0.420)  # first one stays


def test_a_reply_that_is_never_loud_has_no_audible_time():
    timer = AudibleTimer(RATE, start_s=0.0)
    for i in range(5):
        timer.add(reply(4 * FRAME, total=4 * FRAME, seed=i), arrived_s=0.1 * i)  # hiss only
    assert timer.audible_s is None and timer.audible_ms is None
