"""The echo canceller without devices: its reference, delay tracking, metering and WebRTC AEC3 itself.

Real pywebrtc-audio on a simulated echo path (sisyphus.bench.aec: the packaged speech
clips, a synthetic room, a noise floor); no PortAudio. The device path is in
tests/e2e/test_open_speakers.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from sisyphus.audio.echo import FRAME_SAMPLES, EchoCanceller, EchoMeter
from sisyphus.audio.reference import CaptureClock, DelayTracker, FarEndReference, ReferenceReader
from sisyphus.bench.aec import replies, simulate
from sisyphus.frames import MIC_RATE_HZ, SPEAKER_RATE_HZ

BLOCK = 480  # a 20 ms speaker block at 24 kHz


def _click_at(index: int, n: int = BLOCK) -> np.ndarray:
    block = np.zeros(n, np.float32)
    block[index] = 1.0
    return block


def _write_blocks(reference: FarEndReference, blocks: list[np.ndarray], t0_s: float = 10.0) -> None:
    for k, block in enumerate(blocks):
        reference.write(block, t0_s + k * BLOCK / SPEAKER_RATE_HZ)


def test_the_reference_is_what_was_played_at_16_khz_in_its_place():
    reference = FarEndReference()
    blocks = [np.zeros(BLOCK, np.float32) for _ in range(10)]
    blocks[5] = _click_at(240)  # played at 24 kHz sample 5 * 480 + 240 = 2640
    _write_blocks(reference, blocks)
    audio = reference.read(0, reference.written)
    assert int(np.argmax(np.abs(audio))) == 2640 * 2 // 3  # sample 1760 at 16 kHz
    assert reference.read(-100, 50).tolist() == [0.0] * 50  # before the start: silence
    assert not reference.read(reference.written, 10).any()  # not written yet: silence


def test_an_underrun_puts_the_silence_the_speaker_played_into_the_reference():
    reference = FarEndReference()
    reference.write(np.zeros(BLOCK, np.float32), 10.0)
    # Due at 10.02, the next block came 50 ms late after the device ran dry.
    reference.write(_click_at(0), 10.07, underflow=True)
    reference.write(np.zeros(BLOCK, np.float32), 10.09)  # the resampler hands a block on one call late
    audio = reference.read(0, reference.written)
    assert int(np.argmax(np.abs(audio))) == pytest.approx((0.02 + 0.05) * MIC_RATE_HZ, abs=2)
    assert reference.gaps == 1
    late_but_no_underrun = FarEndReference()
    late_but_no_underrun.write(np.zeros(BLOCK, np.float32), 10.0)
    late_but_no_underrun.write(_click_at(0), 10.07)  # a late callback whose audio still played on time
    late_but_no_underrun.write(np.zeros(BLOCK, np.float32), 10.09)
    assert int(np.argmax(np.abs(late_but_no_underrun.read(0, late_but_no_underrun.written)))) == pytest.approx(320, abs=2)


def test_the_reader_reads_what_played_when_the_frame_was_captured_through_bursts_and_stalls():
    reference = FarEndReference()
    # A burst: the device took ten 20 ms blocks at once to fill its buffer; they play one after another.
    for k in range(10):
        reference.write(np.full(BLOCK, 0.1 * (k + 1), np.float32), 10.0)
    reader = ReferenceReader(reference)
    assert reader.next_frame(80, 10.045).tolist() == pytest.approx([0.3] * 80, abs=1e-3)  # block 2: 40-60 ms
    assert reader.next_frame(80, 10.165).tolist() == pytest.approx([0.9] * 80, abs=1e-3)  # block 8
    assert not reader.next_frame(FRAME_SAMPLES, 9.9).any()  # before the speaker started
    # The speaker stalls for 200 ms without reporting an underrun: it played nothing meanwhile.
    reference.write(np.full(BLOCK, 0.5, np.float32), 10.4)
    reference.write(np.full(BLOCK, 0.5, np.float32), 10.4)
    assert reader.restarts == 1
    assert not reader.next_frame(FRAME_SAMPLES, 10.3).any()
    assert reader.next_frame(80, 10.425).tolist() == pytest.approx([0.5] * 80, abs=1e-3)
    reader.move(MIC_RATE_HZ // 100)  # 10 ms later in the reference
    assert reader.next_frame(80, 10.415).tolist() == pytest.approx([0.5] * 80, abs=1e-3)
    assert reader.moves == 1


def test_the_capture_clock_keeps_to_the_sample_count_through_late_blocks_and_moves_on_lost_ones():
    clock = CaptureClock()
    block = 512
    clock.add(block, 5.0 + (block - 1) / MIC_RATE_HZ)  # on time: sample 0 was captured at 5.0
    for k in range(1, 30):  # a busy machine: blocks arrive up to 300 ms late, in a burst
        clock.add(block, 5.0 + ((k + 1) * block - 1) / MIC_RATE_HZ + 0.3 * (k < 10))
    assert clock.time_of(20 * block) == pytest.approx(5.0 + 20 * block / MIC_RATE_HZ)
    clock.add(block, 5.0 + (31 * block - 1) / MIC_RATE_HZ - 0.004)  # 4 ms early: jitter, not worth a jump
    assert clock.time_of(20 * block) == pytest.approx(5.0 + 20 * block / MIC_RATE_HZ)
    assert clock.restarts == 0
    # 200 ms of input lost: every later block comes that much later than its count says.
    lost = 0.2
    for k in range(31, 70):
        clock.add(block, 5.0 + ((k + 1) * block - 1) / MIC_RATE_HZ + lost)
    assert clock.restarts == 1
    assert clock.time_of(60 * block) == pytest.approx(5.0 + lost + 60 * block / MIC_RATE_HZ)


def test_the_delay_tracker_finds_the_echo_behind_its_reference():
    rng = np.random.default_rng(0)
    speech = soxr.resample(np.concatenate(replies()[:2]), SPEAKER_RATE_HZ, MIC_RATE_HZ).astype(np.float32)
    delay = int(0.120 * MIC_RATE_HZ)
    near = np.concatenate([np.zeros(delay, np.float32), 0.4 * speech])[: speech.size]
    near = near + rng.normal(0, 1e-3, near.size).astype(np.float32)
    tracker = DelayTracker()
    found = [
        d for i in range(speech.size // FRAME_SAMPLES)
        if (d := tracker.add(near[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES], speech[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])) is not None
    ]  # fmt: skip
    assert found and all(d == pytest.approx(120.0, abs=0.5) for d in found)
    silent = DelayTracker()
    assert all(silent.add(near[i : i + FRAME_SAMPLES], np.zeros(FRAME_SAMPLES, np.float32)) is None
               for i in range(0, 3 * MIC_RATE_HZ, FRAME_SAMPLES))  # no playback: nothing to place
    unrelated = DelayTracker()
    noise = rng.normal(0, 0.1, near.size).astype(np.float32)
    assert all(unrelated.add(noise[i : i + FRAME_SAMPLES], speech[i : i + FRAME_SAMPLES]) is None
               for i in range(0, speech.size - FRAME_SAMPLES, FRAME_SAMPLES))  # no echo in it


def test_aec3_removes_at_least_25_db_of_a_simulated_room_echo_and_keeps_the_user():
    run = simulate(replies())
    assert len(run.reduction_db) == 4
    assert np.median(run.reduction_db) >= 25.0, run.reduction_db
    assert run.realignments == 0  # the echo was where the reference put it
    user = soxr.resample(replies()[-1], SPEAKER_RATE_HZ, MIC_RATE_HZ).astype(np.float32) * 0.25
    talked_over = simulate(replies()[:2], user=user)
    assert talked_over.kept_db is not None and talked_over.kept_db > -10.0  # the user comes through


def test_an_echo_beyond_aec3s_reach_is_found_and_the_reference_moved_to_it():
    run = simulate(replies() * 2, delay_s=0.55)  # half a second: past the 0.4 s AEC3 handles here
    assert run.realignments >= 1
    assert np.median(run.reduction_db[-3:]) >= 25.0, run.reduction_db


def test_the_meter_reports_each_stretch_of_playback_once_it_ends():
    meter = EchoMeter()
    rng = np.random.default_rng(1)
    far = (0.1 * rng.standard_normal(FRAME_SAMPLES)).astype(np.float32)
    silence = np.zeros(FRAME_SAMPLES, np.float32)
    for _ in range(200):  # 2 s of reply: the microphone hears it at 0.05, the canceller leaves 0.0005
        meter.add(far * 0.5, far * 0.005, far)
    assert meter.take() == []  # still playing
    for _ in range(60):  # 0.6 s of silence ends the stretch
        meter.add(silence, silence, silence)
    (report,) = meter.take()
    assert report.seconds == pytest.approx(2.0)
    assert report.echo_reduction_db == pytest.approx(40.0, abs=0.01)
    assert report.echo_dbfs == pytest.approx(10 * np.log10(np.mean((far * 0.5) ** 2)), abs=0.01)
    for _ in range(100):  # headphones: the reply plays, the microphone hears nothing of it
        meter.add(silence, silence, far)
    for _ in range(60):
        meter.add(silence, silence, silence)
    (quiet,) = meter.take()
    assert quiet.echo_reduction_db is None and quiet.seconds == pytest.approx(1.0)


def test_blocks_of_any_size_come_out_whole_frames_with_the_time_of_their_last_sample():
    canceller = EchoCanceller(FarEndReference())
    out, t_s = canceller.process(np.zeros(512, np.float32), 10.0)
    assert out.size == 480 and t_s == pytest.approx(10.0 - 32 / MIC_RATE_HZ)
    out, t_s = canceller.process(np.zeros(512, np.float32), 10.032)
    assert out.size == 480 and t_s == pytest.approx(10.032 - 64 / MIC_RATE_HZ)
    assert canceller.frames == 6
    with pytest.raises(ValueError, match="reference"):
        EchoCanceller(None)
    plain = EchoCanceller(None, echo_cancellation=False)
    assert plain.describe() == "noise suppression, high-pass filter"


def test_the_first_moments_of_playback_are_held_down_while_aec3_converges_echo_tails_included():
    rng = np.random.default_rng(2)
    played = (0.1 * rng.standard_normal(3 * SPEAKER_RATE_HZ)).astype(np.float32)
    played[SPEAKER_RATE_HZ // 2 : SPEAKER_RATE_HZ * 8 // 10] = 0.0  # a pause between phrases: their echo still comes
    near = (0.05 * rng.standard_normal(3 * MIC_RATE_HZ)).astype(np.float32)  # no echo: AEC3 leaves it

    def cleaned(converge_s: float) -> np.ndarray:
        reference = FarEndReference()
        canceller = EchoCanceller(reference, noise_suppression=False, converge_s=converge_s)
        out = []
        for index in range(near.size // FRAME_SAMPLES):
            if reference.written < (index + 3) * FRAME_SAMPLES:
                start = index * BLOCK // 2
                reference.write(played[start : start + BLOCK], 0.0)
            frame = near[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
            out.append(canceller.process(frame, (index + 1) * FRAME_SAMPLES / MIC_RATE_HZ - 1 / MIC_RATE_HZ)[0])
        return np.concatenate(out)

    held, plain = cleaned(1.5), cleaned(0.0)
    first, later = slice(MIC_RATE_HZ // 10, MIC_RATE_HZ), slice(2 * MIC_RATE_HZ, 3 * MIC_RATE_HZ)
    ratio_db = 10 * np.log10(np.sum(held[first] ** 2) / np.sum(plain[first] ** 2))
    assert ratio_db == pytest.approx(-40.0, abs=0.5)  # held 40 dB down while converging, through the pause
    np.testing.assert_allclose(held[later], plain[later], atol=1e-6)  # then untouched
