"""`sisyphus talk`: start the view, load the models, run the session, keep the transcript."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sisyphus.agent.build import TalkOptions, build_session, prepare
from sisyphus.agent.session import SessionParts, run_session, transcript_path_of
from sisyphus.config import Config
from sisyphus.frames import Notice
from sisyphus.ui.events import ConfigSummary, VoiceChanged

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 1.0


def run_talk(config: Config, options: TalkOptions) -> int:
    """Run one session; returns the exit code (0 after a normal end or Ctrl-C)."""
    from sisyphus.ui.view import make_view

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its bars would tear through the live dashboard
    notices = _Notices()
    ready = prepare(config, options, notify=notices)
    view = make_view(options.plain)
    notices.view = view
    view.start()
    try:
        view.handle(ConfigSummary(tuple(config_summary(config, options))))
        _report_system(view)
        started = time.perf_counter()
        parts, models = build_session(config, options, ready, view, notices)
        view.handle(_models_event(models))
        _report_fast_paths(view, models.device)
        view.handle(VoiceChanged(config.voice.default))
        view.handle(Notice(f"ready in {time.perf_counter() - started:.1f} s — " + _ready_hint(options)))
        try:
            result = asyncio.run(_run(parts, models))
        except KeyboardInterrupt:
            view.handle(Notice("stopped (Ctrl-C); transcript kept"))
            return 0
        view.handle(Notice(f"session {result.reason}: {result.turns} turn(s)"))
        path = transcript_path_of(parts.consumers)
        if path:
            view.handle(Notice(f"transcript: {path}"))
        return 0
    finally:
        view.stop()


class _Notices:
    """Notices from before the view exists go to the log, later ones to the view."""

    view: Any = None

    def __call__(self, text: str) -> None:
        if self.view is None:
            log.warning("%s", text)
        else:
            self.view.handle(Notice(text))


async def _run(parts: SessionParts, models: Any) -> Any:
    monitor = asyncio.create_task(_monitor(parts.events, models), name="monitor")
    try:
        return await run_session(parts)
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor


async def _monitor(events: asyncio.Queue, models: Any) -> None:
    """Memory and loaded models for the UI, once a second."""
    from sisyphus.runtime.memory import memory_snapshot
    from sisyphus.ui.events import MemoryUpdate

    while True:
        snapshot = await asyncio.to_thread(memory_snapshot)
        events.put_nowait(MemoryUpdate(snapshot))
        events.put_nowait(_models_event(models))
        await asyncio.sleep(MONITOR_INTERVAL_S)


def _models_event(models: Any) -> Any:
    from sisyphus.ui.events import ModelsLoaded

    return ModelsLoaded(
        tuple(models.loaded()),
        models.device,
        str(models.dtype).removeprefix("torch."),
        tuple(models.load_seconds.items()),
    )


def _report_system(view: Any) -> None:
    from sisyphus.runtime.device import cuda_status
    from sisyphus.runtime.memory import memory_snapshot
    from sisyphus.ui.events import CudaUpdate, MemoryUpdate

    view.handle(CudaUpdate(cuda_status()))
    view.handle(MemoryUpdate(memory_snapshot()))


def _report_fast_paths(view: Any, device: str) -> None:
    """On a GPU, say which fast paths the warm-up turned on (and why any is off)."""
    from sisyphus.runtime import fastpath

    paths = fastpath.states().values()
    if device.startswith("cuda") and paths:
        view.handle(Notice("fast paths: " + "; ".join(p.describe() for p in paths)))


def config_summary(config: Config, options: TalkOptions) -> list[str]:
    """A few lines that say what this session will use."""
    source = "keyboard" if options.text_mode else (str(options.input_file) if options.input_file else f"mic {config.audio.input_device or 'default'}")
    sink = str(options.output_file) if options.output_file else f"speaker {config.audio.output_device or 'default'}"
    return [
        f"input: {source}; output: {sink}; barge-in: {'on' if config.barge_in else 'off'}; echo cancellation: {config.audio.echo_cancellation}",
        f"device: {config.device}, dtype: {config.dtype}, memory: {config.memory}",
        f"ASR: {config.models.asr}",
        f"TTS: {config.models.tts_custom} (preset voices), {config.models.tts_base} (cloned voices)",
        f"voice: {config.voice.default}, language: {config.voice.language}",
        f"LLM: {config.llm.model} at {config.llm.base_url}",
    ]


def _ready_hint(options: TalkOptions) -> str:
    if options.text_mode:
        return "type a message and press Enter (/voice NAME, /voices, /quit)"
    if options.input_file:
        return "playing the input file"
    return "speak when you are ready (Ctrl-C to stop)"
