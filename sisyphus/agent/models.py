"""The session's models, loaded and placed per the memory strategy.

- resident: ASR and the TTS model(s) the session needs are loaded at start.
- lazy-tts: ASR at start; a TTS model when the first reply needs it.
- swap: one model's weights on the GPU at a time. Every model is loaded on the CPU and
  adopted into one WeightArena (runtime/arena.py): fixed GPU memory the size of the
  largest model, into which a model's weights are copied from pinned host memory before it
  runs. The addresses never change, so each model's fast paths (TTS CUDA graphs, compiled
  ASR step) are built once on the GPU and stay on across swaps. No effect on a CPU-only
  session.

A preset voice needs the CustomVoice model and a cloned voice the Base model; a session
that switches between the two kinds loads the other model when it is first needed.
A model with a server configured (`remote.*_url`) is not loaded: its remote engine
(asr/remote.py, tts/remote.py) takes its place behind the same methods, connecting
stands for loading, and the memory strategy leaves it alone. Every method that loads or
runs a model is called from a model worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from sisyphus.config import Config
from sisyphus.hub import model_folder
from sisyphus.errors import TTSError
from sisyphus.runtime.remote import remote_endpoint

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
        self._arena: Any = None  # the swap strategy's WeightArena, made with the first model
        self.load_seconds: dict[str, float] = {}

    @property
    def swapping(self) -> bool:
        return self._config.memory == "swap" and self.device.startswith("cuda")

    def loaded(self) -> list[str]:
        """Names of the loaded models, for the UI (`asr`, `tts_custom`, `tts_base`; remote ones marked)."""
        models = ([("asr", self._asr)] if self._asr is not None else []) + sorted(self._tts.items())
        return [name + (" (remote)" if getattr(model, "remote", False) else "") for name, model in models]

    def load_at_start(self, tts_key: str | None) -> None:
        """Load what the memory strategy wants resident before the first turn."""
        if self._with_asr:
            self.asr()
        if tts_key and self._config.memory == "resident":
            self.tts(tts_key)

    def asr(self) -> Any:
        with self._lock:
            if self._asr is None and (endpoint := remote_endpoint(self._config, "asr")) is not None:
                from sisyphus.asr.remote import RemoteRecognizer

                self._asr = self._connect("asr", RemoteRecognizer(endpoint, language=self._config.voice.language))
            if self._asr is None:
                from sisyphus.asr.glm import GlmAsrEngine

                started = time.perf_counter()
                folder = model_folder(self._config, "asr")
                engine = GlmAsrEngine.load(str(folder), device=self._load_device, dtype=self.dtype)
                self._adopt("asr", engine)
                engine.warmup()  # builds and checks the fast path on the GPU, once
                self._asr = engine
                self._loaded("asr", started)
            self._make_room("asr")
            return self._asr

    def tts(self, key: str) -> Any:
        if key not in TTS_KEYS:
            raise ValueError(key)
        with self._lock:
            if key not in self._tts and (endpoint := remote_endpoint(self._config, key)) is not None:
                from sisyphus.tts.remote import RemoteSynthesizer

                engine = RemoteSynthesizer(endpoint, stream_format=self._config.remote.tts_stream_format)
                self._tts[key] = self._connect(key, engine)
            if key not in self._tts:
                from sisyphus.tts.qwen3 import Qwen3TTS

                started = time.perf_counter()
                folder = model_folder(self._config, key)
                # Loaded on the CPU when swapping: the vocoder's dtype is then the GPU's, set here.
                model = Qwen3TTS.from_pretrained(str(folder), device=self._load_device, dtype=self.dtype,
                                                 codec_dtype=self.dtype if self.swapping else None)
                self._adopt(key, model)
                model.warmup()  # the first reply as fast as the tenth; captures CUDA graphs on a GPU
                self._tts[key] = model
                self._loaded(key, started)
            self._make_room(key)
            return self._tts[key]

    def transcribe(self, samples_16k: np.ndarray) -> str:
        engine = self.asr()
        with self.using("asr"):
            return engine.transcribe(samples_16k)

    @contextmanager
    def using(self, name: str) -> Iterator[None]:
        """While the block runs, `name`'s weights stay on the GPU (swap); no-op otherwise.

        Swapped models share one arena, so a model may only run while it holds the lock:
        ASR (a barge-in) and TTS (a reply) take turns instead of overlapping.
        """
        if not self.swapping or self._remote(name):
            yield
            return
        with self._lock:
            self._make_room(name)
            yield

    def held_stream(self, name: str, start: Callable[[], Iterator[np.ndarray]]) -> Iterator[np.ndarray]:
        """`start()`'s chunks, each made while `name` holds the GPU (swap): the ASR may run
        between two chunks, never inside one."""
        if not self.swapping or self._remote(name):
            yield from start()
            return
        chunks: Iterator[np.ndarray] | None = None
        while True:
            with self.using(name):
                if chunks is None:
                    chunks = start()  # builds and prefills the prompt
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    @property
    def _load_device(self) -> str:
        """Swapping loads on the CPU: the arena then takes the weights onto the GPU."""
        return "cpu" if self.swapping else self.device

    def _adopt(self, name: str, model: Any) -> None:
        """In swap mode, move a freshly loaded model's weights into the arena (it is then the active one)."""
        if not self.swapping:
            return
        from sisyphus.runtime.arena import WeightArena

        if self._arena is None:
            self._arena = WeightArena(self.device)
        self._arena.adopt(name, model.weight_modules())
        model.placed_on(self.device)

    def _make_room(self, name: str) -> None:
        """In swap mode, copy `name`'s weights into the arena (a no-op when they are there, or
        when `name` is not loaded yet: loading adopts it into the arena as the active model)."""
        if self._arena is None or name not in self._arena.members():
            return
        if self.swapping and not self._remote(name) and self._arena.activate(name):
            log.debug("swap: %s in, %.0f ms", name, self._arena.last_swap_s * 1000)

    def _models(self) -> dict[str, Any]:
        found = dict(self._tts)
        if self._asr is not None:
            found["asr"] = self._asr
        return found

    def _remote(self, name: str) -> bool:
        """Whether `name` runs on a server (it has no weights here to swap)."""
        return getattr(self._models().get(name), "remote", False) or remote_endpoint(self._config, name) is not None

    def _connect(self, name: str, engine: Any) -> Any:
        """A remote engine, checked: the server answers and serves the model (else RemoteError)."""
        try:
            engine.warmup()
        except BaseException:
            engine.close()
            raise
        self._notify(f"{name}: {engine.name} served by {engine.endpoint.base_url}")
        return engine

    def _loaded(self, name: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.load_seconds[name] = seconds
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
            yield from self._models.held_stream(key, lambda: model.stream(
                text,
                target,
                language=None if language in (None, "auto") else language,
                instruct=instruct,
                cancel=cancel,
                seed=self._tts.seed,
                first_chunk_frames=self._tts.first_chunk_frames,
                chunk_frames=self._tts.chunk_frames,
                max_frames=max_frames,
            ))
        except TTSError as exc:
            # Text the model cannot speak (an emoji-only phrase, say) skips the phrase.
            log.warning("phrase not spoken: %s", exc.one_line())
        else:
            self.last_stats = model.last_stats
