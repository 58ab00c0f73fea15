"""Voice-activity detection: Silero VAD frames turned into turns (SpeechStarted, Utterance)."""

from sisyphus.vad.endpointer import Endpointer, load_silero_model

__all__ = ["Endpointer", "load_silero_model"]
