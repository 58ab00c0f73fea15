"""Qwen3-TTS 12 Hz speech tokenizer (codec): audio <-> codes [frames, 16], plus streaming decode."""

from .config import TINY_SHRINK, CodecConfig
from .streaming import StreamingDecoder
from .tokenizer import SpeechTokenizer

__all__ = ["TINY_SHRINK", "CodecConfig", "SpeechTokenizer", "StreamingDecoder"]
