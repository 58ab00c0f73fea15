"""On a machine without audio devices (CI, this VM): one clear error, never a traceback."""

from __future__ import annotations

import asyncio

import pytest

from sisyphus.audio.devices import list_devices
from sisyphus.audio.sink import SpeakerSink
from sisyphus.audio.source import MicSource
from sisyphus.errors import AudioDeviceError



def _portaudio_without_devices() -> bool:
    try:
        return not list_devices()
    except AudioDeviceError:  # no libportaudio at all: a different message, not tested here
        return False


pytestmark = pytest.mark.skipif(
    not _portaudio_without_devices(), reason="needs PortAudio on a machine without audio devices"
)


def test_no_microphone_points_to_input_file() -> None:
    async def run() -> None:
        async with MicSource(None):
            pass

    with pytest.raises(AudioDeviceError) as caught:
        asyncio.run(run())
    assert caught.value.one_line() == "no audio input device found. connect one, or use --input FILE"


def test_no_speaker_points_to_output_file() -> None:
    with pytest.raises(AudioDeviceError) as caught:
        asyncio.run(SpeakerSink("pulse").start())
    assert caught.value.one_line() == "no audio output device found. connect one, or use --output FILE.wav"
