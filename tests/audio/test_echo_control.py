"""Which sessions get echo cancellation, and the source that runs it (no devices opened)."""

from __future__ import annotations

import asyncio
import sys

import numpy as np
import pytest

from sisyphus.audio.echo_control import EchoControlledSource, wants_echo_cancellation, with_echo_control
from sisyphus.audio.sink import FileSink, SpeakerSink
from sisyphus.audio.source import FileSource, MicSource
from sisyphus.config import AudioConfig
from sisyphus.errors import AudioDeviceError, ConfigError
from sisyphus.frames import AudioBlock, EchoStatus


@pytest.mark.parametrize(
    ("mode", "microphone", "speaker", "expected"),
    [
        ("auto", True, True, True),  # a laptop's own speaker and microphone
        ("auto", True, False, False),  # replies go to a WAV file: nothing to echo
        ("auto", False, True, False),  # an --input file is no room
        ("on", True, False, True),
        ("on", False, True, False),
        ("off", True, True, False),
    ],
)
def test_who_gets_echo_cancellation(mode, microphone, speaker, expected):
    assert wants_echo_cancellation(mode, microphone=microphone, speaker=speaker) is expected


def test_an_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="auto, on, off"):
        wants_echo_cancellation("maybe", microphone=True, speaker=True)


def _events(queue: asyncio.Queue) -> list:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_a_microphone_and_speaker_get_the_canceller_and_the_speaker_feeds_its_reference(tmp_path):
    events: asyncio.Queue = asyncio.Queue()
    sink = SpeakerSink(None)
    source = with_echo_control(MicSource(None), sink, AudioConfig(), events)
    assert isinstance(source, EchoControlledSource) and source.canceller.echo_cancellation
    assert sink.monitor is not None  # every block the speaker plays reaches the reference
    only_noise = with_echo_control(MicSource(None), SpeakerSink(None), AudioConfig(echo_cancellation="off"), events)
    assert isinstance(only_noise, EchoControlledSource) and not only_noise.canceller.echo_cancellation
    bare = MicSource(None)
    nothing = AudioConfig(echo_cancellation="off", noise_suppression=False, high_pass_filter=False)
    assert with_echo_control(bare, SpeakerSink(None), nothing, events) is bare
    assert [e for e in _events(events)] == [EchoStatus("off", "turned off")]


def test_an_input_file_is_never_processed(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "in.wav", np.zeros(1600, np.float32), 16000)
    events: asyncio.Queue = asyncio.Queue()
    source = FileSource(tmp_path / "in.wav")
    assert with_echo_control(source, FileSink(tmp_path / "out.wav"), AudioConfig(echo_cancellation="on"), events) is source
    assert _events(events) == [EchoStatus("off", "the input is a file")]


def test_a_missing_binding_is_an_error_when_asked_for_and_a_warning_otherwise(monkeypatch):
    monkeypatch.setitem(sys.modules, "pywebrtc_audio", None)  # import now raises ImportError
    events: asyncio.Queue = asyncio.Queue()
    with pytest.raises(AudioDeviceError) as caught:
        with_echo_control(MicSource(None), SpeakerSink(None), AudioConfig(echo_cancellation="on"), events)
    assert "pip install pywebrtc-audio" in caught.value.hint
    mic = MicSource(None)
    assert with_echo_control(mic, SpeakerSink(None), AudioConfig(), events) is mic
    (status,) = _events(events)
    assert status.state == "off" and "pywebrtc-audio" in status.detail


class _Blocks:
    """An AudioSource of fixed blocks, as a microphone would deliver them."""

    dropped_blocks = 3

    def __init__(self, blocks: list[AudioBlock]) -> None:
        self.blocks = blocks
        self.entered = self.exited = False

    async def __aenter__(self):
        self.entered = True
        return self

    async def __aexit__(self, *exc_info):
        self.exited = True

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for block in self.blocks:
            yield block


def test_the_controlled_source_hands_on_cleaned_blocks_and_says_what_runs():
    from sisyphus.audio.echo import EchoCanceller
    from sisyphus.audio.reference import FarEndReference

    rng = np.random.default_rng(0)
    blocks = [AudioBlock(rng.normal(0, 0.01, 512).astype(np.float32), 10.0 + 0.032 * (k + 1)) for k in range(10)]
    inner = _Blocks(blocks)
    events: asyncio.Queue = asyncio.Queue()
    source = EchoControlledSource(inner, EchoCanceller(FarEndReference()), events)

    async def run():
        out = []
        async with source as entered:
            async for block in entered:
                out.append(block)
        return out

    out = asyncio.run(run())
    assert inner.entered and inner.exited and source.dropped_blocks == 3
    assert sum(b.samples.size for b in out) == 10 * 512 // 160 * 160  # whole 10 ms frames, nothing lost
    assert [round(b.t_s, 6) for b in out][-1] == round(blocks[-1].t_s, 6)  # 10 x 512 is 32 whole frames
    assert all(later.t_s > earlier.t_s for earlier, later in zip(out, out[1:]))
    (status,) = _events(events)
    assert status == EchoStatus("on", "AEC3 echo canceller, noise suppression, high-pass filter")
