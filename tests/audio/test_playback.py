"""PlaybackBuffer: per-turn accounting that barge-in relies on (what was heard, and when)."""

from __future__ import annotations

import numpy as np
import pytest

from sisyphus.audio.playback import PlaybackBuffer

RATE = 24_000


def test_pull_fills_in_order_pads_with_silence_and_reports_drained_turns() -> None:
    buffer = PlaybackBuffer()
    buffer.push(1, np.full(300, 0.1, dtype=np.float32))
    buffer.push(2, np.full(500, 0.2, dtype=np.float32))
    out = np.empty(480, dtype=np.float32)

    assert buffer.pull(out, 10.0, RATE) == [1]  # turn 1 ran out inside this block
    assert np.all(out[:300] == np.float32(0.1)) and np.all(out[300:] == np.float32(0.2))
    assert buffer.first_sound_s(1) == 10.0
    assert buffer.first_sound_s(2) == 10.0 + 300 / RATE
    assert buffer.pull(out, 10.02, RATE) == [2]
    assert np.all(out[:320] == np.float32(0.2)) and not np.any(out[320:])
    assert (buffer.played(1), buffer.played(2), buffer.pending(2), buffer.busy()) == (300, 500, 0, False)
    assert buffer.pull(out, 10.04, RATE) == [] and not np.any(out)


def test_flush_drops_the_rest_and_heard_counts_only_what_reached_the_ear() -> None:
    buffer = PlaybackBuffer()
    buffer.push(3, np.ones(RATE, dtype=np.float32))  # 1 s
    out = np.empty(480, dtype=np.float32)
    for index in range(10):  # 0.2 s handed to a device that plays it 0.1 s later
        buffer.pull(out, 5.1 + index * 0.02, RATE)
    assert buffer.flush() == [3]
    assert (buffer.played(3), buffer.pending(3)) == (4800, 0)
    assert buffer.played(3, now_s=5.1, rate_hz=RATE) == 0  # nothing audible yet
    assert buffer.played(3, now_s=5.2, rate_hz=RATE) == 2400  # half of it heard so far
    assert buffer.played(3, now_s=9.0, rate_hz=RATE) == 4800  # never more than was handed over
    assert buffer.flush() == []
    assert buffer.last_sound_end_s(3, RATE) == pytest.approx(5.1 + 0.18 + 480 / RATE)
