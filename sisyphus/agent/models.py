"""The session's models, loaded and placed per the memory strategy.

- resident: ASR and the TTS model(s) the session needs are loaded at start.
- lazy-tts: ASR at start; a TTS model when the first reply needs it.
- swap: one model on the GPU at a time; the others wait in CPU memory and are moved
  back before they run (no effect on a CPU-only session).

A preset voice needs the CustomVoice model and a cloned voice the Base model; a session
that switches between the two kinds loads the other model when it is first needed.
Every method that loads or runs a model is called from a model worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sisyphus.config import Config
from sisyphus.hub import model_folder
from sisyphus.errors import TTSError

log = logging.getLogger(__name__)

TTS_KEYS = ("tts_base", "tts_custom")


class ModelSet:
    """Loads ASR and TTS models on demand and applies the memory strategy."""

    def __init__(
        self,
        config: Config,
        *,
        device: str,
        dtype: Any,
        notify: Callable[[str], None] = lambda text: None,
        with_asr: bool = True,
    ) -> None:
        self._config = config
        self.device = device
        self.dtype = dtype
        self._notify = notify
        self._with_asr = with_asr
        self._lock = threading.RLock()
        self._asr: Any = None
        self._tts: dict[str, Any] = {}
        self._on_gpu: str | None = None
        self.load_seconds: dict[str, float] = {}

    @property
    def swapping(self) -> bool:
        return self._config.memory == "swap" and self.device.startswith("cuda")

    def loaded(self) -> list[str]:
        """Names of the loaded models, for the UI (`asr`, `tts_custom`, `tts_base`)."""
        names = ["asr"] if self._asr is not None else []
        return names + sorted(self._tts)

    def load_at_start(self, tts_key: str | None) -> None:
        """Load what the memory strategy wants resident before the first turn."""
        if self._with_asr:
            self.asr()
        if tts_key and self._config.memory == "resident":
            self.tts(tts_key)

    def asr(self) -> Any:
        with self._lock:
            if self._asr is None:
                from sisyphus.asr.glm import GlmAsrEngine

                started = time.perf_counter()
                folder = model_folder(self._config, "asr")
                self._asr = GlmAsrEngine.load(str(folder), device=self._place("asr"), dtype=self.dtype)
                self._asr.warmup()
                self._loaded("asr", started)
            self._make_room("asr")
            return self._asr

    def tts(self, key: str) -> Any:
        if key not in TTS_KEYS:
            raise ValueError(key)
        with self._lock:
            if key not in self._tts:
                from sisyphus.tts.qwen3 import Qwen3TTS

                started = time.perf_counter()
                folder = model_folder(self._config, key)
                model = Qwen3TTS.from_pretrained(str(folder), device=self._place(key), dtype=self.dtype)
                model.warmup()  # the first reply as fast as the tenth; captures CUDA graphs on a GPU
                self._tts[key] = model
                self._loaded(key, started)
            self._make_room(key)
            return self._tts[key]

    def transcribe(self, samples_16k: np.ndarray) -> str:
        with self._lock:
            engine = self.asr()
        return engine.transcribe(samples_16k)

    def _place(self, name: str) -> str:
        return "cpu" if self.swapping and self._on_gpu not in (None, name) else self.device

    def _make_room(self, name: str) -> None:
        """In swap mode, move `name` onto the GPU and every other model off it."""
        if not self.swapping or self._on_gpu == name:
            return
        for other, model in self._models().items():
            target = self.device if other == name else "cpu"
            model.to(target)
        import torch

        torch.cuda.empty_cache()  # hand the parked model's memory back to the driver
        self._on_gpu = name
        log.debug("swap: %s now on %s", name, self.device)

    def _models(self) -> dict[str, Any]:
        found = dict(self._tts)
        if self._asr is not None:
            found["asr"] = self._asr
        return found

    def _loaded(self, name: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.load_seconds[name] = seconds
        if self._on_gpu is None:
            self._on_gpu = name
        self._notify(f"loaded {name} in {seconds:.1f} s")


class RoutedSynthesizer:
    """A SpeechSynthesizer over the session's TTS models: voice name → model + prompt.

    `stream` is a generator, so resolving the voice and loading a model (lazy-tts) happen
    on the TTS thread at the first step, never on the event loop.
    """

    sample_rate_hz = 24_000
    last_stats: Any = None  # StreamStats of the last phrase: first audio, real-time factor

    def __init__(self, models: ModelSet, router: Any, config: Config) -> None:
        self._models = models
        self._router = router
        self._tts = config.tts
        self._instruct = config.voice.instruct or None

    def stream(
        self,
        text: str,
        voice: str,
        *,
        language: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[np.ndarray]:
        key, target = self._router.resolve(voice, load=self._models.tts)
        model = self._models.tts(key)
        instruct = self._instruct if key == "tts_custom" and model.supports_instruct else None
        max_frames = max(1, int(self._tts.max_seconds_per_phrase * 12.5))
        self.last_stats = None
        try:
            yield from model.stream(
                text,
                target,
                language=None if language in (None, "auto") else language,
                instruct=instruct,
                cancel=cancel,
                seed=self._tts.seed,
                first_chunk_frames=self._tts.first_chunk_frames,
                chunk_frames=self._tts.chunk_frames,
                max_frames=max_frames,
            )
        except TTSError as exc:
            # Text the model cannot speak (an emoji-only phrase, say) skips the phrase.
            log.warning("phrase not spoken: %s", exc.one_line())
        else:
            self.last_stats = model.last_stats
