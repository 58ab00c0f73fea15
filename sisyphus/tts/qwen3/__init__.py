"""Sisyphus's own Qwen3-TTS 12 Hz runtime: talker, code predictor, prompts, streaming.

Importing this package loads no model; `Qwen3TTS.from_pretrained` does.
"""

from sisyphus.tts.qwen3.model import Qwen3TTS, StreamStats
from sisyphus.tts.qwen3.prompt import ClonePrompt

__all__ = ["ClonePrompt", "Qwen3TTS", "StreamStats"]
