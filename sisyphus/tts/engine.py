"""The streaming TTS plug point that `talk` drives.

An engine turns one phrase into 24 kHz float32 PCM chunks as they are generated. It is a
plain (synchronous) iterator because model work runs on the engine's own worker thread;
the agent pulls chunks from that thread and hands them to the loop. Setting `cancel`
stops generation between two codec frames (barge-in).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

import numpy as np


class SpeechSynthesizer(Protocol):
    sample_rate_hz: int

    def stream(
        self,
        text: str,
        voice: str,
        *,
        language: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield float32 mono chunks at `sample_rate_hz` for `text` spoken by `voice`."""
        ...
