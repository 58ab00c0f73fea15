"""Audio in and out: microphone or --input file (16 kHz), speaker or --output WAV (24 kHz).

sounddevice (PortAudio) is imported only when a device is opened or listed, so importing
this package works on machines without libportaudio and does not freeze the device list.
"""

from sisyphus.audio.devices import list_devices, resolve_device
from sisyphus.audio.sink import AudioSink, FileSink, SpeakerSink
from sisyphus.audio.source import AudioSource, FileSource, MicSource, load_audio

__all__ = [
    "AudioSink",
    "AudioSource",
    "FileSink",
    "FileSource",
    "MicSource",
    "SpeakerSink",
    "list_devices",
    "load_audio",
    "resolve_device",
]
