"""FileSink: reply audio lands in the WAV at the clock time it was written, silence around it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sisyphus.audio.sink import FileSink
from sisyphus.errors import AudioDeviceError
from sisyphus.frames import SPEAKER_RATE_HZ
from tests.audio.vclock import VirtualClock

RATE = SPEAKER_RATE_HZ
BLOCK = RATE * 20 // 1000  # 480 samples, 20 ms
REPO = Path(__file__).resolve().parents[2]


def _tone(seconds: float, hz: float = 500.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _voiced_span(audio: np.ndarray, threshold: float = 0.05) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return int(loud[0]), int(loud[-1]) + 1


def test_audio_written_at_t_appears_at_t_in_the_file(tmp_path: Path) -> None:
    clock = VirtualClock(start_s=10.0)
    path = tmp_path / "out.wav"
    tone = _tone(0.5)

    async def main() -> tuple[bool, bool, float]:
        sink = FileSink(path, block_ms=20, clock=clock.now, origin_s=10.0, sleep=clock.sleep)
        await sink.start()
        await clock.run_until(11.0)
        sink.write(1, tone)
        waiter = asyncio.create_task(sink.drained(1))
        await clock.run_until(11.25)
        half_way = waiter.done()
        await clock.run_until(13.0)
        done = waiter.done()
        first_sound_s = sink.first_sound_s(1)
        assert first_sound_s is not None
        assert sink.played_samples(1) == tone.size
        await sink.close()
        return half_way, done, first_sound_s

    half_way, done, first_sound_s = asyncio.run(main())
    assert (half_way, done) == (False, True)
    assert 11.0 <= first_sound_s <= 11.0 + BLOCK / RATE
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE
    assert abs(audio.size - 3.0 * RATE) <= BLOCK  # the whole session, silence included
    onset = round((first_sound_s - 10.0) * RATE)  # where the sink says the turn began
    assert abs(onset - 1.0 * RATE) <= BLOCK
    np.testing.assert_allclose(audio[onset : onset + tone.size], tone, atol=1.5 / 32767)  # intact, exactly there
    assert not np.any(audio[:onset]) and not np.any(audio[onset + tone.size :])


def test_flush_cuts_playback_within_one_block(tmp_path: Path) -> None:
    clock = VirtualClock(start_s=0.0)
    path = tmp_path / "out.wav"

    async def main() -> tuple[int, bool]:
        sink = FileSink(path, block_ms=20, clock=clock.now, origin_s=0.0, sleep=clock.sleep)
        await sink.start()
        await clock.run_until(0.5)
        sink.write(7, _tone(2.0))
        waiter = asyncio.create_task(sink.drained(7))
        await clock.run_until(1.0)
        sink.flush()  # barge-in
        await clock.run_until(1.001)
        released = waiter.done()
        await clock.run_until(2.0)
        played = sink.played_samples(7)
        await sink.close()
        return played, released

    played, released = asyncio.run(main())
    assert released  # flushing ends the turn's drain
    assert abs(played - 0.5 * RATE) <= BLOCK
    audio, _ = sf.read(path, dtype="float32")
    start, end = _voiced_span(audio)
    assert abs(start - 0.5 * RATE) <= BLOCK + 2  # +2: the sine's first samples are below threshold
    assert abs(end - 1.0 * RATE) <= BLOCK + 2  # nothing after the flush point
    assert abs((end - start) - played) <= 2


def test_turns_play_in_order_and_drain_separately(tmp_path: Path) -> None:
    clock = VirtualClock(start_s=0.0)

    async def main() -> list[tuple[bool, bool]]:
        sink = FileSink(tmp_path / "out.wav", block_ms=20, clock=clock.now, sleep=clock.sleep)
        await sink.start()
        sink.write(1, _tone(0.2, hz=300))
        sink.write(2, _tone(0.2, hz=700))
        first = asyncio.create_task(sink.drained(1))
        second = asyncio.create_task(sink.drained(2))
        states = []
        for t_s in (0.1, 0.25, 0.45):
            await clock.run_until(t_s)
            states.append((first.done(), second.done()))
        assert sink.first_sound_s(2) == pytest.approx(0.2, abs=1e-9)
        await sink.close()
        return states

    assert asyncio.run(main()) == [(False, False), (True, False), (True, True)]


def test_wav_is_valid_after_the_process_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    script = f"""
import asyncio, os, signal
import numpy as np
from sisyphus.audio.sink import FileSink

async def main():
    sink = FileSink({str(path)!r}, block_ms=20)
    await sink.start()
    sink.write(1, np.full(24000, 0.25, dtype=np.float32))
    while sink._writer.frames_written < 4800:  # 0.2 s on the real clock
        await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no atexit

asyncio.run(main())
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -9
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE and audio.size >= 4800
    assert np.allclose(audio[:4800], 0.25, atol=1 / 32767)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("out.mp3", "must be a .wav file"), ("no/such/folder/out.wav", "does not exist")],
)
def test_bad_output_paths_are_refused(tmp_path: Path, name: str, fragment: str) -> None:
    with pytest.raises(AudioDeviceError, match=fragment):
        FileSink(tmp_path / name)


def test_input_file_and_output_file_share_one_timeline(tmp_path: Path) -> None:
    """An echo on the shared clock: the reply starts in out.wav where speech starts in in.wav."""
    from sisyphus.audio.source import FileSource
    from sisyphus.frames import MIC_RATE_HZ

    speech = np.zeros(3 * MIC_RATE_HZ, dtype=np.float32)
    speech[int(1.3 * MIC_RATE_HZ) : int(1.8 * MIC_RATE_HZ)] = 0.3  # "speech" from 1.3 s to 1.8 s
    sf.write(tmp_path / "in.wav", speech, MIC_RATE_HZ)
    clock = VirtualClock(start_s=0.0)

    async def main() -> None:
        source = FileSource(tmp_path / "in.wav", clock=clock.now, tail_silence_s=0.5, origin_s=0.0, sleep=clock.sleep)
        sink = FileSink(tmp_path / "out.wav", clock=clock.now, origin_s=0.0, sleep=clock.sleep)
        await sink.start()

        async def echo() -> None:
            async for block in source:
                if np.max(np.abs(block.samples)) > 0.1 and sink.first_sound_s(1) is None:
                    sink.write(1, _tone(0.2))

        async with source:
            task = asyncio.create_task(echo())
            await clock.run_until(4.0)
            await asyncio.wait_for(task, 5)
        await sink.close()

    asyncio.run(main())
    out, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    start, _ = _voiced_span(out)
    block_s = 512 / MIC_RATE_HZ  # the echo hears speech at the end of the first loud input block
    assert 1.3 * RATE <= start <= (1.3 + block_s) * RATE + BLOCK + 2
