"""Maps a voice name to the TTS model that speaks it and what that model needs.

A preset speaker is spoken by the CustomVoice model (`tts_custom`) from its name; a
cloned voice by the Base model (`tts_base`) from its stored clone prompt. Prompts are
read from disk once and cached. A prompt computed with another Base model than the one
loaded is recomputed from the stored reference on first use, stored back, and the user
is told (through `notify`). Reading the presets needs only the CustomVoice model's
config.json, never its weights.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


from sisyphus.config import Config, VoiceConfig, resolve_path
from sisyphus.errors import ModelError, RemoteError, VoiceError
from sisyphus.hub import model_folder
from sisyphus.runtime.remote import remote_endpoint
from sisyphus.voices.library import REFERENCE_RATE_HZ, Needs, VoiceInfo, VoiceLibrary

log = logging.getLogger(__name__)

# The preset speakers of the official CustomVoice checkpoints (talker_config.spk_id). New
# voices may not take these names even while the CustomVoice model is not on disk, so a
# later download cannot make a cloned voice and a preset share a name.
OFFICIAL_SPEAKERS = ("serena", "vivian", "uncle_fu", "ryan", "aiden", "ono_anna", "sohee", "eric", "dylan")

def official_presets() -> tuple[list[str], dict[str, str]]:
    """The preset speakers (and dialects) of the official CustomVoice config packaged with
    Sisyphus: what `voices list` shows before the model is downloaded."""
    from sisyphus.voices.languages import OFFICIAL_DIR

    raw = json.loads((OFFICIAL_DIR / "Qwen3-TTS-12Hz-1.7B-CustomVoice" / "config.json").read_text(encoding="utf-8"))
    talker = raw["talker_config"]
    dialects = {s: d for s, d in (talker.get("spk_is_dialect") or {}).items() if isinstance(d, str) and d}
    return list(talker["spk_id"]), dialects


Notify = Callable[[str], None]
ModelLoader = Callable[[str], Any]


def read_presets(config: Config) -> tuple[list[str], dict[str, str]] | None:
    """The CustomVoice model's speakers and their dialects; None when it is not on disk.

    Reads config.json directly (not through the TTS runtime), so `voices list` does not
    import torch. With a remote CustomVoice server, asks it instead (GET /audio/voices;
    dialects are not listed there); None when it cannot be reached.
    """
    endpoint = remote_endpoint(config, "tts_custom")
    if endpoint is not None:
        return _remote_presets(endpoint)
    try:
        folder = model_folder(config, "tts_custom")
    except ModelError as exc:
        log.info("preset speakers unknown: %s", exc.message)
        return None
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        kind = raw["tts_model_type"]
        talker = raw["talker_config"]
        speakers = list(talker.get("spk_id") or {})
        dialects = {s: d for s, d in (talker.get("spk_is_dialect") or {}).items() if isinstance(d, str) and d}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(
            f"{path} is missing or malformed ({exc})", f"re-run `sisyphus models pull {config.models.tts_custom}`"
        ) from exc
    if kind != "custom_voice":
        raise ModelError(
            f"models.tts_custom ({config.models.tts_custom}) is a {kind} model, not CustomVoice",
            "set models.tts_custom to a Qwen3-TTS ...-CustomVoice repo or folder",
        )
    return speakers, dialects


def _remote_presets(endpoint: Any) -> tuple[list[str], dict[str, str]] | None:
    from sisyphus.tts.remote import RemoteSynthesizer

    engine = RemoteSynthesizer(endpoint)
    try:
        return engine.list_voices(), {}
    except RemoteError as exc:
        log.warning("preset speakers unknown: %s", exc.one_line())
        return None
    finally:
        engine.close()


class VoiceRouter:
    """Voice name → ("tts_base" | "tts_custom", speaker name or ClonePrompt). Thread-safe."""

    def __init__(
        self,
        library: VoiceLibrary,
        *,
        default: str = VoiceConfig.default,
        presets_known: bool = True,
        notify: Notify | None = None,
    ) -> None:
        self.library = library
        self.configured_default = default
        # False when the CustomVoice model is not on disk: unknown names are then passed
        # to it as speakers, and loading it reports the missing model.
        self.presets_known = presets_known
        self._notify = notify or (lambda text: log.warning("%s", text))
        self._lock = threading.RLock()
        self._prompts: dict[str, tuple[int, Any]] = {}  # name → (prompt file mtime_ns, prompt)
        self._references: dict[str, tuple[int, Any]] = {}  # name → (reference mtime_ns, CloneReference)

    @classmethod
    def from_config(cls, config: Config, notify: Notify | None = None) -> VoiceRouter:
        presets = read_presets(config)
        speakers, dialects = presets if presets is not None else ([], {})
        library = VoiceLibrary(
            resolve_path(config, config.voice.library), speakers, dialects, reserved_names=OFFICIAL_SPEAKERS
        )
        return cls(library, default=config.voice.default, presets_known=presets is not None, notify=notify)

    def names(self) -> list[str]:
        """Every usable voice, cloned first (damaged folders left out)."""
        return self.library.names()

    def default_voice(self) -> str:
        """The configured default, or what replaces it when that voice no longer exists."""
        try:
            return self.info(self.configured_default).name
        except VoiceError:
            fallback = self.fallback_default()
            self._notify(f"default voice {self.configured_default!r} does not exist; using {fallback!r}")
            return fallback

    def fallback_default(self) -> str:
        """The built-in default preset if the model has it, else its first speaker."""
        presets = self.library.preset_speakers
        if not presets or VoiceConfig.default in presets:
            return VoiceConfig.default
        return presets[0]

    def info(self, name: str) -> VoiceInfo:
        """The voice's record; an unknown name is a VoiceError listing the valid ones."""
        try:
            return self.library.get(name)
        except VoiceError:
            if self.presets_known or (self.library.folder / name).is_dir():
                raise
        return self.library.preset_info(name)

    def check_prompt(self, name: str) -> None:
        """A cloned voice's stored prompt is whole (header only: cheap, no torch)."""
        from sisyphus.voices.voicefile import check_prompt_file

        info = self.info(name)
        if info.prompt_path is None or not info.model:
            return  # a preset, or a voice cloned with a remote Base server (no local prompt yet)
        try:
            check_prompt_file(info.prompt_path)
        except VoiceError as exc:
            raise VoiceError(
                f"voice {info.name!r} is damaged: {exc.message}",
                f"delete it with `sisyphus voices delete {info.name}` and clone it again",
            ) from exc

    def model_for(self, name: str) -> Needs:
        """Which configured TTS model speaks `name` (for the memory strategy and the UI)."""
        return self.info(name).needs

    def resolve(self, name: str, load: ModelLoader | None = None) -> tuple[Needs, Any]:
        """The model key and what to pass as `voice` to that model's `stream`.

        With `load` (model key → loaded model), a cloned voice's prompt is checked against
        the loaded Base model and recomputed once if it was made with another one (or
        computed, for a voice cloned remotely). A remote Base server gets the voice's
        reference audio and transcript instead (a CloneReference).
        """
        info = self.info(name)
        if info.kind == "preset":
            return "tts_custom", info.name
        model = load("tts_base") if load is not None else None
        if getattr(model, "takes_reference", False) or (model is None and not info.has_prompt):
            return "tts_base", self.reference(info)
        prompt = self._prompt(info) if info.has_prompt else None
        if model is not None and getattr(prompt, "model_name", None) != model.name:
            prompt = self._recompute(info, prompt, model)
        return "tts_base", prompt

    def reference(self, info: VoiceInfo) -> Any:
        """A cloned voice as a remote Base server takes it: reference audio and transcript (cached)."""
        from sisyphus.tts.remote import CloneReference

        assert info.reference_path is not None
        with self._lock:
            try:
                stamp = info.reference_path.stat().st_mtime_ns
            except OSError as exc:
                raise VoiceError(f"voice {info.name!r} has no reference.wav", "clone it again") from exc
            cached = self._references.get(info.name)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            reference = CloneReference.from_samples(info.name, self._reference_audio(info), REFERENCE_RATE_HZ,
                                                    info.transcript)
            self._references[info.name] = (stamp, reference)
            return reference

    def _reference_audio(self, info: VoiceInfo) -> Any:
        assert info.reference_path is not None
        import soundfile as sf  # here: the CLI imports this module for `--help` too

        import numpy as np

        try:
            reference, rate = sf.read(info.reference_path, dtype="float32")
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise VoiceError(f"voice {info.name!r} is damaged: its reference.wav cannot be read", "clone it again") from exc
        if rate != REFERENCE_RATE_HZ or reference.ndim != 1 or not np.all(np.isfinite(reference)):
            raise VoiceError(f"voice {info.name!r} is damaged: reference.wav is not 24 kHz mono audio", "clone it again")
        return reference

    def _prompt(self, info: VoiceInfo) -> Any:
        from sisyphus.tts.qwen3 import ClonePrompt

        assert info.prompt_path is not None
        with self._lock:
            try:
                stamp = info.prompt_path.stat().st_mtime_ns
            except OSError as exc:
                raise VoiceError(f"voice {info.name!r} has no clone prompt", "clone it again") from exc
            cached = self._prompts.get(info.name)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            try:
                prompt = ClonePrompt.load(info.prompt_path)
            except VoiceError as exc:
                raise VoiceError(
                    f"voice {info.name!r} is damaged: {exc.message}",
                    f"delete it with `sisyphus voices delete {info.name}` and clone it again",
                ) from exc
            self._prompts[info.name] = (stamp, prompt)
            return prompt

    def _recompute(self, info: VoiceInfo, old: Any, model: Any) -> Any:
        """Make the prompt again with the loaded Base model and store it in the library."""
        if old is None:
            self._notify(f"voice {info.name!r} was cloned with a remote Base server; "
                         f"computing its clone prompt for {model.name} (once)")
        else:
            self._notify(f"voice {info.name!r} was cloned with {getattr(old, 'model_name', '?')}; "
                         f"recomputing its clone prompt for {model.name} (once)")
        reference = self._reference_audio(info)
        language = None if info.language == "auto" else info.language
        fresh = model.create_clone_prompt(reference, REFERENCE_RATE_HZ, text=info.transcript, language=language)

        def write(path: Path) -> str:
            fresh.save(path)
            return str(model.name)

        with self._lock:
            self.library.replace_prompt(info.name, write)
            self._prompts.pop(info.name, None)
        return fresh
