"""FileSource and load_audio: any libsndfile format and rate in, 16 kHz mono blocks out."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sisyphus.audio.source import FileSource, load_audio
from sisyphus.errors import AudioInputError
from sisyphus.frames import MIC_RATE_HZ, AudioBlock
from tests.audio.vclock import VirtualClock

BLOCK = 512  # 32 ms at 16 kHz
TONE_HZ = 440.0


def _stereo_tone(rate_hz: int, seconds: float) -> np.ndarray:
    """Left 0.6 and right 0.2 amplitude: the mono mix must be 0.4."""
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    tone = np.sin(2 * np.pi * TONE_HZ * t)
    return np.stack([0.6 * tone, 0.2 * tone], axis=1).astype(np.float32)


def _dominant_hz(x: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate_hz / x.size)


async def _collect(source: FileSource) -> list[AudioBlock]:
    async with source:
        return [block async for block in source]


@pytest.mark.parametrize("rate_hz", [8000, 44100, 48000])
@pytest.mark.parametrize(("suffix", "subtype"), [(".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS")])
def test_any_format_and_rate_becomes_16k_mono(tmp_path: Path, rate_hz: int, suffix: str, subtype: str) -> None:
    seconds = 1.5
    path = tmp_path / f"tone{suffix}"
    sf.write(path, _stereo_tone(rate_hz, seconds), rate_hz, subtype=subtype)

    source = FileSource(path, realtime=False, tail_silence_s=0.5)
    blocks = asyncio.run(_collect(source))

    assert source.source_rate_hz == rate_hz and source.source_channels == 2
    assert abs(source.speech_samples - seconds * MIC_RATE_HZ) <= BLOCK
    assert all(b.samples.dtype == np.float32 and b.samples.shape == (BLOCK,) for b in blocks)
    audio = np.concatenate([b.samples for b in blocks])
    expected_total = source.speech_samples + 0.5 * MIC_RATE_HZ
    assert expected_total <= audio.size < expected_total + BLOCK
    middle = audio[4000:20000]
    assert abs(_dominant_hz(middle, MIC_RATE_HZ) - TONE_HZ) < 2.0
    peak = np.sqrt(2) * np.sqrt(np.mean(middle**2))  # amplitude of the mixed tone
    assert abs(peak - 0.4) < 0.02, peak
    assert np.all(audio[source.speech_samples + 160 :] == 0.0)  # the tail is exact silence


def test_load_audio_matches_a_direct_resample(tmp_path: Path) -> None:
    rate_hz = 22050
    t = np.arange(rate_hz) / rate_hz
    mono = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    path = tmp_path / "mono.wav"
    sf.write(path, mono, rate_hz, subtype="FLOAT")
    out = load_audio(path, 24000)
    assert out.size == 24000
    reference = 0.5 * np.sin(2 * np.pi * 300 * np.arange(24000) / 24000)
    assert np.max(np.abs(out[500:-500] - reference[500:-500])) < 1e-3


def test_blocks_are_released_on_the_clock_grid_and_never_drift(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    sf.write(path, np.full(MIC_RATE_HZ, 0.1, dtype=np.float32), MIC_RATE_HZ)  # 1.0 s
    clock = VirtualClock(start_s=50.0)
    source = FileSource(path, block_ms=32, clock=clock.now, tail_silence_s=0.0, sleep=clock.sleep)
    released: list[tuple[float, float]] = []  # (clock when the consumer got it, block t_s)

    async def consume() -> None:
        async for block in source:
            released.append((clock.now(), block.t_s))
            if len(released) == 10:
                await clock.sleep(0.5)  # a consumer stalled for 0.5 s

    async def main() -> None:
        async with source:  # decoding happens in a thread, before the clock moves
            task = asyncio.create_task(consume())
            await clock.run_until(60.0)
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    block_s = BLOCK / MIC_RATE_HZ
    n_blocks = -(-MIC_RATE_HZ // BLOCK)  # the last partial block is padded
    assert len(released) == n_blocks
    for index, (got_s, t_s) in enumerate(released):
        assert t_s == pytest.approx(50.0 + (index + 1) * block_s, abs=1e-9)  # on the grid
        assert got_s >= t_s - 1e-9  # never before its last sample "was recorded"
    stall_end_s = released[9][0] + 0.5
    caught_up = [got for got, t in released[10:] if t <= stall_end_s]
    assert caught_up and all(got == pytest.approx(stall_end_s) for got in caught_up)  # burst, no sleep
    assert released[-1][0] == pytest.approx(released[-1][1])  # the stall did not shift the end


def test_tail_silence_lets_the_last_utterance_end(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    sf.write(path, np.full(8000, 0.25, dtype=np.float32), MIC_RATE_HZ)
    blocks = asyncio.run(_collect(FileSource(path, realtime=False, tail_silence_s=2.0)))
    audio = np.concatenate([b.samples for b in blocks])
    assert np.allclose(audio[:8000], 0.25)
    assert 8000 + 32000 <= audio.size < 8000 + 32000 + BLOCK
    assert not np.any(audio[8000:])


def _write_text(path: Path) -> Path:
    path.write_text("this is not audio, just text\n")
    return path


def _corrupt_flac(path: Path) -> Path:
    good = path.with_name("good.flac")
    sf.write(good, _stereo_tone(44100, 1.0), 44100)
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    data[200:] = rng.integers(0, 256, len(data) - 200, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: d / "missing.wav", "does not exist"),
        (lambda d: (d / "empty.wav").write_bytes(b"") or d / "empty.wav", "is empty (0 bytes)"),
        (lambda d: _write_text(d / "notes.wav"), "not an audio file libsndfile can read"),
        (lambda d: _write_text(d / "movie.mp4"), "not an audio file libsndfile can read"),
        (lambda d: d, "is not a file"),
    ],
    ids=["missing", "zero-byte", "text-as-wav", "text-as-mp4", "folder"],
)
def test_bad_input_files_fail_up_front_with_one_line(tmp_path: Path, make, fragment: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioInputError) as caught:
        FileSource(path)
    line = caught.value.one_line()
    assert fragment in line and str(path) in line and "\n" not in line
    with pytest.raises(AudioInputError):
        load_audio(path, MIC_RATE_HZ)


def test_header_only_wav_holds_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), MIC_RATE_HZ)
    with pytest.raises(AudioInputError, match="holds no samples"):
        FileSource(path)


def test_corrupt_flac_fails_when_decoded(tmp_path: Path) -> None:
    path = _corrupt_flac(tmp_path / "broken.flac")
    source = FileSource(path)  # the header is intact
    with pytest.raises(AudioInputError, match="can decode") as caught:
        asyncio.run(_collect(source))
    assert "\n" not in caught.value.one_line()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to make an AAC file")
def test_real_mp4_audio_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "speech.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac", str(path)],
        check=True,
    )
    with pytest.raises(AudioInputError) as caught:
        FileSource(path)
    assert "ffmpeg -i" in caught.value.hint
