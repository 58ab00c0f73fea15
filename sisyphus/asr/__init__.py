"""Speech recognition: the SpeechRecognizer protocol and GLM-ASR-Nano-2512 in process.

`sisyphus.asr.glm` imports torch and transformers; it is not imported here so that
importing the package stays cheap.
"""

from sisyphus.asr.engine import SpeechRecognizer

__all__ = ["SpeechRecognizer"]
