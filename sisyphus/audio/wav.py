"""A mono 16-bit WAV writer whose file is valid after every block.

libsndfile and the `wave` module write the header's sizes only on close, so a session
killed with Ctrl-C (or worse) would leave an unreadable file. Patching the two size
fields after each append costs two tiny writes and keeps the file playable at all times.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

_HEADER_BYTES = 44


class StreamingWavWriter:
    """Appends float32 blocks as 16-bit PCM, keeping the header current."""

    def __init__(self, path: str | Path, sample_rate_hz: int) -> None:
        self.path = Path(path)
        self.sample_rate_hz = sample_rate_hz
        self.frames_written = 0
        self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(self._header(0))
        self._file.flush()

    def write(self, samples: np.ndarray) -> None:
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        pcm = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
        data = np.round(pcm * 32767.0).astype("<i2").tobytes()
        self._file.seek(0, 2)
        self._file.write(data)
        self.frames_written += len(data) // 2
        self._patch_sizes()

    def close(self) -> None:
        if self._file is None:
            return
        self._patch_sizes()
        self._file.close()
        self._file = None

    def _patch_sizes(self) -> None:
        assert self._file is not None
        data_bytes = self.frames_written * 2
        self._file.seek(4)
        self._file.write(struct.pack("<I", 36 + data_bytes))
        self._file.seek(40)
        self._file.write(struct.pack("<I", data_bytes))
        self._file.flush()

    def _header(self, data_bytes: int) -> bytes:
        rate = self.sample_rate_hz
        return b"".join(
            [
                b"RIFF",
                struct.pack("<I", 36 + data_bytes),
                b"WAVE",
                b"fmt ",
                struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16),
                b"data",
                struct.pack("<I", data_bytes),
            ]
        )


def wav_bytes(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """A whole mono 16-bit WAV in memory (what remote ASR and clone references upload)."""
    pcm = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    data = np.round(pcm * 32767.0).astype("<i2").tobytes()
    rate = sample_rate_hz
    header = b"".join([
        b"RIFF", struct.pack("<I", 36 + len(data)), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16),
        b"data", struct.pack("<I", len(data)),
    ])
    return header + data
