"""Builds a talk session from the config and the command-line options.

Everything that can fail on the user's input (an unreadable --input file, a missing
model, an unknown voice or device) is checked here, before any model is loaded, so the
user gets one clear line instead of waiting for a load that cannot succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sisyphus.agent.controller import TurnController
from sisyphus.agent.models import ModelSet, RoutedSynthesizer
from sisyphus.hub import model_folder
from sisyphus.agent.session import SessionParts
from sisyphus.config import Config
from sisyphus.frames import Notice
from sisyphus.runtime.remote import remote_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TalkOptions:
    input_file: Path | None = None  # replaces the microphone
    output_file: Path | None = None  # replaces the speaker
    text_mode: bool = False  # type instead of speak
    plain: bool = False
    transcript_dir: Path | None = None
    read_keyboard: bool = True
    voice: str | None = None  # --voice: an unknown name is an error, not a fallback
    config_file: Path | None = None  # the config read, which --output must not replace


@dataclass(frozen=True)
class Prepared:
    """What was checked before any model loads."""

    source: Any  # AudioSource, or None with --text
    sink: Any
    router: Any  # VoiceRouter
    voice: str
    tts_key: str  # the TTS model the starting voice needs


def prepare(config: Config, options: TalkOptions, notify: Any) -> Prepared:
    """Open nothing heavy, check everything cheap: input file, devices, voice, model folders.

    An unreadable --input file, a missing device, an unknown voice or a model that is not
    on disk should cost the user a second, not a model load.
    """
    from sisyphus.agent.checks import check_transcript_dir
    from sisyphus.audio.paths import refuse_overwriting
    from sisyphus.config import resolve_path
    from sisyphus.voices.languages import check_language
    from sisyphus.voices.router import VoiceRouter

    library = resolve_path(config, config.voice.library)
    protected = {"--input": options.input_file, "the config file": options.config_file, "the voice library": library}
    refuse_overwriting(options.output_file, protected)
    check_language(config)
    check_transcript_dir(options.transcript_dir)
    source, sink = _open_io(config, options)
    router = VoiceRouter.from_config(config, notify=notify)
    voice = router.info(options.voice).name if options.voice else router.default_voice()
    router.check_prompt(voice)
    tts_key = router.model_for(voice)
    remote = remote_keys(config)
    if source is not None and "asr" not in remote:
        model_folder(config, "asr")
    if tts_key not in remote:
        model_folder(config, tts_key)
    return Prepared(source, sink, router, voice, tts_key)


def _open_io(config: Config, options: TalkOptions) -> tuple[Any, Any]:
    from sisyphus.audio.devices import resolve_device
    from sisyphus.audio.sink import FileSink, SpeakerSink
    from sisyphus.audio.source import FileSource, MicSource

    source: Any = None
    if options.input_file is not None:
        source = FileSource(options.input_file, block_ms=config.audio.input_block_ms)
        source.decode()  # NaN, infinity, a broken stream: refused now, not after the load
    elif not options.text_mode:
        resolve_device(config.audio.input_device, "input")
        source = MicSource(config.audio.input_device, block_ms=config.audio.input_block_ms)
    if options.output_file is not None:
        sink: Any = FileSink(options.output_file)
    else:
        resolve_device(config.audio.output_device, "output")
        sink = SpeakerSink(config.audio.output_device, block_ms=config.audio.output_block_ms)
    return source, sink


def build_session(
    config: Config, options: TalkOptions, ready: Prepared, view: Any, notify: Any, models: ModelSet | None = None
) -> tuple[SessionParts, ModelSet]:
    """Load models per the memory strategy and wire the session's parts.

    `models` lets a caller that already holds loaded models (`sisyphus bench`) run a
    session on them instead of loading a second copy; `talk` leaves it out.
    """
    from sisyphus.agent.bargein import BargeInPolicy
    from sisyphus.audio.echo_control import with_echo_control
    from sisyphus.llm.chunker import PhraseChunker
    from sisyphus.llm.history import History
    from sisyphus.transcript import TranscriptWriter, default_transcript_dir
    from sisyphus.vad.endpointer import open_endpointer

    source, sink, router, voice = ready.source, ready.sink, ready.router, ready.voice
    light = all_remote(config, with_asr=source is not None)
    if not light:
        from sisyphus.llm.client import ChatClient
    if models is None:
        models = _model_set(config, notify, with_asr=source is not None, light=light)
    device = models.device
    models.load_at_start(ready.tts_key)
    # A cloned voice's stored prompt is read now, so a damaged one is one line at start
    # (with resident models, checked against the loaded Base model too), not every turn.
    router.resolve(voice, load=models.tts if config.memory == "resident" else None)

    events: asyncio.Queue = asyncio.Queue()
    writer = TranscriptWriter(
        options.transcript_dir or default_transcript_dir(),
        {"voice": voice, "llm_model": config.llm.model, "device": device, "memory": config.memory},
    )
    controller = TurnController(
        asr=models if source is not None else None,
        llm=DeferredChat(config.llm) if light else ChatClient(config.llm),
        tts=RoutedSynthesizer(models, router, config),
        sink=sink,
        history=History(config.llm.system_prompt, config.llm.max_history_turns),
        make_chunker=PhraseChunker,
        events=events,
        voice=voice,
        language=config.voice.language,
        barge_in=config.barge_in,
        backchannel=BargeInPolicy.from_config(config.backchannel),
    )
    warn = lambda text: events.put_nowait(Notice(text, "warning"))  # noqa: E731
    source = with_echo_control(source, sink, config.audio, events)
    # With every model remote, Silero runs on onnxruntime and the session never imports torch.
    endpointer = (open_endpointer(config.vad, warn, model=_onnx_vad() if light else None, onset_events=config.barge_in)
                  if source is not None else None)
    parts = SessionParts(
        controller=controller,
        source=source,
        sink=sink,
        endpointer=endpointer,
        events=events,
        consumers=[view, writer],
        read_keyboard=options.read_keyboard,
        voice_names=router.names,
    )
    events.put_nowait(Notice(f"transcript: {writer.path}"))
    return parts, models


def all_remote(config: Config, *, with_asr: bool) -> bool:
    """Whether no model of the session runs in this process (then torch is never imported)."""
    needed = {"tts_custom", "tts_base"} | ({"asr"} if with_asr else set())
    return needed <= remote_keys(config)


def _model_set(config: Config, notify: Any, *, with_asr: bool, light: bool) -> ModelSet:
    if light:
        return ModelSet(config, device="remote", dtype="", notify=notify, with_asr=with_asr)
    from sisyphus.runtime.device import pick_device, pick_dtype

    device = pick_device(config.device)
    return ModelSet(config, device=device, dtype=pick_dtype(device, config.dtype), notify=notify, with_asr=with_asr)


def _onnx_vad() -> Any:
    from sisyphus.vad.silero_onnx import SileroOnnx

    return SileroOnnx.load()


class DeferredChat:
    """The LLM client, made on the first reply, so importing `openai` (about 1 s of CPU) is not start-up.

    On the light path (every model remote) that import would be half of `talk`'s start-up,
    yet the first reply needs it only after the user has spoken and been transcribed:
    `prefetch_chat_client()` imports it on a thread once the session is ready, and the
    first reply waits for that import if it is still running. The stream is the ChatClient's.
    """

    def __init__(self, config: Any) -> None:
        self._config = config
        self._client: Any = None

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        if self._client is None:
            # A prefetch still importing holds the module's import lock: this waits for it.
            module = await asyncio.to_thread(importlib.import_module, "sisyphus.llm.client")
            self._client = module.ChatClient(self._config)
        async with contextlib.aclosing(self._client.stream(messages)) as deltas:
            async for delta in deltas:
                yield delta


def prefetch_chat_client() -> None:
    """Import the LLM client on a thread now that the session is ready (see DeferredChat)."""
    threading.Thread(target=_import_chat_client, name="sisyphus-llm-import", daemon=True).start()


def _import_chat_client() -> None:
    try:
        importlib.import_module("sisyphus.llm.client")
    except Exception:  # the first reply imports it again and reports the error there
        log.debug("importing the LLM client failed", exc_info=True)
