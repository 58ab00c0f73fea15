"""Speech synthesis: the engine protocol, the Qwen3-TTS runtime (qwen3/), voices."""
