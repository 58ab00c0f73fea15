"""What the agent needs from a speech recognizer, as a Protocol so test doubles need no base class.

Implementations are synchronous and slow (a model call): the agent runs one recognizer
on its own worker thread, never on the event loop.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SpeechRecognizer(Protocol):
    def transcribe(self, samples_16k: np.ndarray) -> str:
        """Text of a float32 mono 16 kHz utterance; "" when there is nothing to recognise."""
        ...

    def warmup(self) -> None:
        """Run once before the first real utterance so its latency excludes one-off costs."""
        ...
