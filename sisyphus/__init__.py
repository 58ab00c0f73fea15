"""Sisyphus: a local voice assistant (mic → VAD → ASR → LLM → TTS → speaker)."""

__version__ = "0.1.0"
