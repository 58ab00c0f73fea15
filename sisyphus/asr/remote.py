"""GLM-ASR served by vLLM: the SpeechRecognizer protocol over `POST /v1/audio/transcriptions`.

Each utterance goes up as a 16 kHz mono 16-bit WAV in a multipart form (`file`, the
served `model`, and `language` when the session has one) and the answer is
`{"text": ...}`, as vLLM's OpenAI-compatible transcription API documents. vLLM takes the
language as an ISO 639-1 code and refuses names such as "english", so the session's
`voice.language` is translated; "auto" sends none and the model decides.

Like the in-process engine this is synchronous and runs on the session's ASR worker
thread; it imports neither torch nor transformers.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from sisyphus.audio.wav import wav_bytes
from sisyphus.errors import RemoteError
from sisyphus.frames import MIC_RATE_HZ, mono_samples
from sisyphus.runtime.remote import Endpoint, HttpClient

log = logging.getLogger(__name__)

# Qwen3-TTS / Sisyphus language names → the ISO 639-1 codes vLLM expects.
ISO_639_1 = {
    "chinese": "zh", "english": "en", "japanese": "ja", "korean": "ko", "german": "de",
    "french": "fr", "russian": "ru", "portuguese": "pt", "spanish": "es", "italian": "it",
}
_REJECTED_HINT = "check voice.language (sent as an ISO 639-1 code) and models.asr for this server"


def asr_language(language: str | None) -> str | None:
    """`voice.language` as vLLM wants it: a two-letter code, or None to let the model decide."""
    value = (language or "auto").strip().lower()
    if value == "auto":
        return None
    if value in ISO_639_1.values():
        return value
    code = ISO_639_1.get(value)
    if code is None:
        log.info("no ISO 639-1 code known for language %r; the ASR server detects the language", language)
    return code


class RemoteRecognizer:
    """A SpeechRecognizer whose model runs on a vLLM server."""

    remote = True

    def __init__(self, endpoint: Endpoint, *, language: str | None = None, backoff_s: float = 0.25) -> None:
        self.endpoint = endpoint
        self.language = asr_language(language)
        self._http = HttpClient(endpoint, backoff_s=backoff_s, rejected_hint=_REJECTED_HINT)

    @property
    def name(self) -> str:
        return self.endpoint.model

    def transcribe(self, samples_16k: np.ndarray) -> str:
        """Text of a float32 mono 16 kHz utterance; "" when the server heard nothing."""
        audio = mono_samples(np.asarray(samples_16k, dtype=np.float32))
        if audio.size == 0:
            return ""
        fields = {"model": self.endpoint.model}
        if self.language:
            fields["language"] = self.language
        files = {"file": ("utterance.wav", wav_bytes(audio, MIC_RATE_HZ), "audio/wav")}
        response = self._http.request("POST", "audio/transcriptions", data=fields, files=files)
        try:
            body = response.json()
        except ValueError:
            body = None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            kind = response.headers.get("content-type", "no content type")
            raise RemoteError(f"{self.endpoint.where} answered without a transcript ({kind})",
                              f"check that {self.endpoint.url_setting} points at a vLLM server")
        return text.strip()

    def warmup(self) -> None:
        """Open the connection and check the model is served, so the first turn pays neither."""
        self._http.check_model()

    def check(self, samples_16k: np.ndarray) -> str:
        """`sisyphus doctor`: the model is served and a tiny request comes back; returns a summary."""
        self._http.check_model()
        started = time.perf_counter()
        text = self.transcribe(samples_16k)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return (f"serves {self.endpoint.model}; transcribed {samples_16k.size / MIC_RATE_HZ:.1f} s of speech "
                f"in {elapsed_ms:.0f} ms: {text[:60]!r}")

    def close(self) -> None:
        self._http.close()
