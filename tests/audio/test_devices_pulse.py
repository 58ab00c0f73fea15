"""MicSource and SpeakerSink through real PortAudio on virtual PulseAudio devices.

The pipe source `mic` is fed from a fifo in real time; the null sink `spk` is recorded
from its monitor. See tests/support/pulse.py for how PortAudio is pointed at the daemon.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sisyphus.audio.devices import list_devices, resolve_device
from sisyphus.audio.sink import SpeakerSink
from sisyphus.audio.source import MicSource, load_audio
from sisyphus.errors import AudioDeviceError
from sisyphus.frames import MIC_RATE_HZ, SPEAKER_RATE_HZ
from tests.support.pulse import PulseDevices, pulse_available, pulse_devices

pytestmark = [
    pytest.mark.audio,
    pytest.mark.skipif(not pulse_available(), reason="needs pulseaudio, pactl and parec"),
]

REPO = Path(__file__).resolve().parents[2]
FRAME = SPEAKER_RATE_HZ // 50  # 20 ms analysis frames of the speaker recording


@pytest.fixture(scope="module")
def pa() -> Iterator[PulseDevices]:
    with pulse_devices() as devices:
        yield devices


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    wav = tmp_path_factory.mktemp("speech") / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Hello, this is a microphone test."], check=True)
    return load_audio(wav, MIC_RATE_HZ)


def _align(recorded: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """The lag of `reference` inside `recorded` and their normalised correlation there."""
    n = recorded.size + reference.size
    spectrum = np.fft.rfft(recorded, n) * np.conj(np.fft.rfft(reference, n))
    lag = int(np.argmax(np.fft.irfft(spectrum, n)[: recorded.size - reference.size + 1]))
    segment = recorded[lag : lag + reference.size]
    corr = float(np.dot(segment, reference) / (np.linalg.norm(segment) * np.linalg.norm(reference) + 1e-12))
    return lag, corr


def test_microphone_blocks_carry_what_was_spoken(pa: PulseDevices, speech: np.ndarray) -> None:
    async def record() -> tuple[np.ndarray, list[float], int]:
        blocks = []
        async with MicSource(None, block_ms=32) as mic:
            iterator = aiter(mic)
            blocks.append(await asyncio.wait_for(anext(iterator), 10))  # the stream is live
            pa.mic.play(speech)
            needed = (speech.size + MIC_RATE_HZ) // mic.block_samples + 1  # + 1 s after it
            for _ in range(needed):
                blocks.append(await asyncio.wait_for(anext(iterator), 10))
            dropped = mic.dropped_blocks
        return np.concatenate([b.samples for b in blocks]), [b.t_s for b in blocks], dropped

    recorded, times, dropped = asyncio.run(record())
    assert dropped == 0
    assert all(b > a for a, b in zip(times, times[1:]))  # timestamps move forward
    lag, corr = _align(recorded, speech)
    assert corr >= 0.9, corr
    voiced = recorded[lag : lag + speech.size]
    ratio_db = 20 * np.log10(np.sqrt(np.mean(voiced**2)) / np.sqrt(np.mean(speech**2)))
    assert abs(ratio_db) < 1.0  # the level arrives unchanged
    assert np.sqrt(np.mean(recorded[:lag] ** 2)) < 1e-3 if lag > 0 else True  # silence before it


def _frames(recording: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 20 ms frame: RMS and dominant frequency."""
    n = recording.size // FRAME
    frames = recording[: n * FRAME].reshape(n, FRAME)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FRAME), axis=1))
    peak_hz = np.argmax(spectrum, axis=1) * SPEAKER_RATE_HZ / FRAME
    return rms, peak_hz


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(SPEAKER_RATE_HZ * seconds)) / SPEAKER_RATE_HZ
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_speaker_plays_a_turn_and_flush_stops_it(pa: PulseDevices) -> None:
    first, second = _tone(1.0, 400.0), _tone(3.0, 1000.0)

    async def play() -> tuple[int, int, int]:
        sink = SpeakerSink(None, block_ms=20, latency=0.1)
        await sink.start()
        try:
            sink.write(1, first)
            sink.write(2, second)
            await asyncio.wait_for(sink.drained(1), 15)  # turn 1 was heard: turn 2 is playing
            sink.flush()  # barge-in during turn 2
            handed_at_flush = sink.handed_samples(2)
            await asyncio.wait_for(sink.drained(2), 5)  # flushed audio counts as drained
            await asyncio.to_thread(recorder.wait_samples, recorder.recorded + SPEAKER_RATE_HZ * 3 // 2, 20)
            return sink.played_samples(1), sink.played_samples(2), sink.handed_samples(2) - handed_at_flush
        finally:
            await sink.close()

    with pa.record_speaker(SPEAKER_RATE_HZ) as recorder:
        assert recorder.wait_samples(SPEAKER_RATE_HZ // 10, 20)  # parec is running
        played_first, played_second, handed_after_flush = asyncio.run(play())
        recording = recorder.samples()

    assert played_first == first.size
    assert played_second < second.size // 4  # only a moment of turn 2 was heard
    assert handed_after_flush <= 480  # at most the block being filled when flush() ran
    rms, peak_hz = _frames(recording)
    loud = rms > 0.1
    first_frames = np.count_nonzero(loud & (np.abs(peak_hz - 400) < 60))
    second_frames = np.count_nonzero(loud & (np.abs(peak_hz - 1000) < 60))
    assert abs(first_frames * 0.02 - 1.0) <= 0.1  # turn 1 was heard in full (±100 ms)
    assert second_frames * 0.02 <= 0.4  # turn 2 stopped right after the flush, not 3 s later
    last_loud = int(np.flatnonzero(loud)[-1])
    assert rms.size - last_loud >= 50  # ≥ 1 s of recorded silence after the flush point
    assert np.all(rms[last_loud + 2 :] < 1e-3)


def test_devices_resolve_by_index_and_name(pa: PulseDevices) -> None:
    devices = {d["name"]: d for d in list_devices()}
    assert {"pulse", "default"} <= devices.keys()
    assert devices["pulse"]["max_input_channels"] > 0 and devices["pulse"]["max_output_channels"] > 0
    assert resolve_device("PULSE", "input") == devices["pulse"]["index"]
    assert resolve_device("fault", "output") == devices["default"]["index"]
    assert resolve_device(str(devices["default"]["index"]), "output") == devices["default"]["index"]
    assert resolve_device(None, "input") is None  # the default exists
    with pytest.raises(AudioDeviceError) as caught:
        resolve_device("usb headset", "input")
    assert "available: " in caught.value.hint and "pulse" in caught.value.hint
    with pytest.raises(AudioDeviceError, match="no audio output device with index 99"):
        resolve_device("99", "output")


_VANISH_SCRIPT = """
import asyncio, os, signal, sys
import numpy as np
from sisyphus.audio.sink import SpeakerSink
from sisyphus.audio.source import MicSource
from sisyphus.errors import AudioDeviceError

async def main():
    sink = SpeakerSink(None, latency=0.1)
    await sink.start()
    sink.write(1, np.zeros(240000, dtype=np.float32))
    try:
        async with MicSource(None) as mic:
            blocks = aiter(mic)
            await asyncio.wait_for(anext(blocks), 10)
            os.kill(int(sys.argv[1]), signal.SIGKILL)  # the test's own sound server disappears
            try:
                while True:
                    await asyncio.wait_for(anext(blocks), 10)
            except AudioDeviceError as exc:
                print("MIC:", exc.one_line(), flush=True)
        try:
            await asyncio.wait_for(sink.wait_failure(), 10)
        except AudioDeviceError as exc:
            print("SPEAKER:", exc.one_line(), flush=True)
        try:
            sink.write(2, np.zeros(10, dtype=np.float32))
        except AudioDeviceError:
            print("WRITE: refused", flush=True)
    finally:
        await sink.close()

asyncio.run(main())
"""


def test_vanished_devices_end_with_an_error_not_a_hang() -> None:
    """Run in a child process: after a server dies, PortAudio may be left wedged."""
    with pulse_devices() as devices:
        env = {**devices.env, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, "-c", _VANISH_SCRIPT, str(devices.pid)],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert "microphone" in lines["MIC"] and "disconnected" in lines["MIC"]
    assert "speaker" in lines["SPEAKER"] and "disconnected" in lines["SPEAKER"]
    assert lines["WRITE"] == "refused"


def test_a_consumer_that_falls_behind_loses_counted_blocks_not_the_audio_thread(pa: PulseDevices) -> None:
    async def run() -> tuple[int, list[float]]:
        async with MicSource(None, block_ms=32, queue_blocks=4) as mic:
            iterator = aiter(mic)
            await asyncio.wait_for(anext(iterator), 10)
            playing = pa.mic.play(np.zeros(MIC_RATE_HZ, dtype=np.float32))  # 1 s, nobody reads
            assert await asyncio.to_thread(playing.done.wait, 20)
            dropped = mic.dropped_blocks
            kept = [(await asyncio.wait_for(anext(iterator), 10)).t_s for _ in range(4)]
        return dropped, kept

    dropped, kept = asyncio.run(run())
    assert dropped >= 15  # ~1 s of 32 ms blocks arrived; the queue holds 4
    gaps = np.diff(kept)
    assert np.all((gaps > 0.0) & (gaps < 0.1))  # the 4 oldest blocks, in order, were kept
