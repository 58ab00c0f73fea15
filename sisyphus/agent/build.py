"""Builds a talk session from the config and the command-line options.

Everything that can fail on the user's input (an unreadable --input file, a missing
model, an unknown voice or device) is checked here, before any model is loaded, so the
user gets one clear line instead of waiting for a load that cannot succeed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sisyphus.agent.controller import TurnController
from sisyphus.agent.models import ModelSet, RoutedSynthesizer
from sisyphus.hub import model_folder
from sisyphus.agent.session import SessionParts
from sisyphus.config import Config
from sisyphus.frames import Notice

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
    from sisyphus.voices.router import VoiceRouter

    source, sink = _open_io(config, options)
    router = VoiceRouter.from_config(config, notify=notify)
    voice = router.info(options.voice).name if options.voice else router.default_voice()
    tts_key = router.model_for(voice)
    if source is not None:
        model_folder(config, "asr")
    model_folder(config, tts_key)
    return Prepared(source, sink, router, voice, tts_key)


def _open_io(config: Config, options: TalkOptions) -> tuple[Any, Any]:
    from sisyphus.audio.devices import resolve_device
    from sisyphus.audio.sink import FileSink, SpeakerSink
    from sisyphus.audio.source import FileSource, MicSource

    source: Any = None
    if options.input_file is not None:
        source = FileSource(options.input_file, block_ms=config.audio.input_block_ms)
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
    from sisyphus.llm.client import ChatClient
    from sisyphus.llm.history import History
    from sisyphus.runtime.device import pick_device, pick_dtype
    from sisyphus.transcript import TranscriptWriter, default_transcript_dir
    from sisyphus.vad.endpointer import open_endpointer

    source, sink, router, voice = ready.source, ready.sink, ready.router, ready.voice
    if models is None:
        device = pick_device(config.device)
        dtype = pick_dtype(device, config.dtype)
        models = ModelSet(config, device=device, dtype=dtype, notify=notify, with_asr=source is not None)
    device = models.device
    models.load_at_start(ready.tts_key)

    events: asyncio.Queue = asyncio.Queue()
    writer = TranscriptWriter(
        options.transcript_dir or default_transcript_dir(),
        {"voice": voice, "llm_model": config.llm.model, "device": device, "memory": config.memory},
    )
    controller = TurnController(
        asr=models if source is not None else None,
        llm=ChatClient(config.llm),
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
    endpointer = open_endpointer(config.vad, warn, onset_events=config.barge_in) if source is not None else None
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
