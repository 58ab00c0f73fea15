"""`sisyphus talk`: start the view, load the models, run the session, keep the transcript."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from sisyphus.agent.build import TalkOptions, all_remote, build_session, prefetch_chat_client, prepare
from sisyphus.agent.session import SessionParts, run_session, transcript_path_of
from sisyphus.agent.signals import StopSignals, stop_signals_as_ctrl_c
from sisyphus.config import Config
from sisyphus.frames import Notice
from sisyphus.safetext import redact_url
from sisyphus.ui.events import ConfigSummary, VoiceChanged

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 1.0


def run_talk(config: Config, options: TalkOptions) -> int:
    """Run one session; returns the exit code (0 after a normal end, Ctrl-C or SIGTERM)."""
    with stop_signals_as_ctrl_c() as stops:
        return _talk(config, options, stops)


def _talk(config: Config, options: TalkOptions, stops: StopSignals) -> int:
    from sisyphus.ui.view import make_view

    from sisyphus.agent.checks import api_key_warning
    from sisyphus.cli_support import debug_enabled
    from sisyphus.ui.logbridge import attach_log_bridge

    notices = _Notices()
    try:
        ready = prepare(config, options, notify=notices)
    except BaseException:
        notices.flush_to_stderr()  # what was noticed before the failure still counts
        raise
    light = all_remote(config, with_asr=ready.source is not None)
    if not light:  # with every model remote, neither transformers nor torch is imported
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its bars would tear through the live dashboard
    view = make_view(options.plain)
    view.start()
    bridge = attach_log_bridge(view, debug_enabled())
    editor = _line_editor(view, options)  # from now on typed keys show inside the dashboard
    try:
        view.handle(ConfigSummary(tuple(config_summary(config, options, ready.voice))))
        notices.attach(view)
        warning = api_key_warning(config)
        if warning:
            view.handle(Notice(warning, "warning"))
        _report_system(view, light)
        started = time.perf_counter()
        parts, models = build_session(config, options, ready, view, notices)
        if editor is not None:
            parts.typed_lines = editor.lines
        view.handle(_models_event(models))
        _report_fast_paths(view, models.device)
        view.handle(VoiceChanged(ready.voice))
        view.handle(Notice(f"ready in {time.perf_counter() - started:.1f} s — " + _ready_hint(options)))
        if light:
            prefetch_chat_client()  # the LLM client's import, off the start-up path
        try:
            result = asyncio.run(_run(parts, models))
        except KeyboardInterrupt:
            view.handle(Notice(f"stopped ({stops.received or 'Ctrl-C'}); transcript kept"))
            return 0
        view.handle(Notice(f"session {result.reason}: {result.turns} turn(s)"))
        path = transcript_path_of(parts.consumers)
        if path:
            view.handle(Notice(f"transcript: {path}"))
        return 0
    finally:
        if editor is not None:
            editor.restore()
        if bridge is not None:
            bridge.detach()
        view.stop()


def _line_editor(view: Any, options: TalkOptions) -> Any:
    """Key-by-key typing inside the dashboard for `--text` at a terminal; else None
    (`--plain` and piped input read whole lines, with the terminal's own echo)."""
    from sisyphus.ui.dashboard import Dashboard
    from sisyphus.ui.typing import TerminalLineEditor

    if not (options.text_mode and isinstance(view, Dashboard) and TerminalLineEditor.usable()):
        return None
    return TerminalLineEditor(view.handle).__enter__()


class _Notices:
    """Notices from before the view exists (a missing default voice: warnings) wait for
    it, or go to stderr if the start fails; later ones (models loaded) are plain info."""

    def __init__(self) -> None:
        self.view: Any = None
        self._early: list[str] = []

    def __call__(self, text: str) -> None:
        if self.view is None:
            self._early.append(text)
        else:
            self.view.handle(Notice(text))

    def attach(self, view: Any) -> None:
        self.view = view
        for text in self._early:
            view.handle(Notice(text, "warning"))
        self._early = []

    def flush_to_stderr(self) -> None:
        for text in self._early:
            print(f"warning: {text}", file=sys.stderr)
        self._early = []


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

    local = models.device != "remote"  # "remote": nothing runs here, so no device to name
    return ModelsLoaded(
        tuple(models.loaded()),
        models.device if local else "",
        str(models.dtype).removeprefix("torch.") if local else "",
        tuple(models.load_seconds.items()),
    )


@dataclass(frozen=True)
class _NoCuda:
    """What the CUDA line says when every model is remote and torch is never imported."""

    available: bool = False
    reason: str = "not needed: ASR and TTS run on remote servers"
    torch_version: str = "not loaded"
    fix: str = ""


def _report_system(view: Any, light: bool = False) -> None:
    from sisyphus.runtime.memory import memory_snapshot
    from sisyphus.ui.events import CudaUpdate, MemoryUpdate

    if light:
        view.handle(CudaUpdate(_NoCuda()))
    else:
        from sisyphus.runtime.device import cuda_status

        view.handle(CudaUpdate(cuda_status()))
    view.handle(MemoryUpdate(memory_snapshot()))


def _report_fast_paths(view: Any, device: str) -> None:
    """On a GPU, say which fast paths the warm-up turned on (and why any is off)."""
    from sisyphus.runtime import fastpath

    paths = fastpath.states().values()
    if device.startswith("cuda") and paths:
        view.handle(Notice("fast paths: " + "; ".join(p.describe() for p in paths)))


def config_summary(config: Config, options: TalkOptions, voice: str | None = None) -> list[str]:
    """A few lines that say what this session will use (`voice`: the one really used)."""
    source = "keyboard" if options.text_mode else (str(options.input_file) if options.input_file else f"mic {config.audio.input_device or 'default'}")
    sink = str(options.output_file) if options.output_file else f"speaker {config.audio.output_device or 'default'}"
    return [
        f"input: {source}; output: {sink}; barge-in: {'on' if config.barge_in else 'off'}; echo cancellation: {config.audio.echo_cancellation}",
        f"device: {config.device}, dtype: {config.dtype}, memory: {config.memory}",
        f"ASR: {_where(config, 'asr')}",
        f"TTS: {_where(config, 'tts_custom')} (preset voices), {_where(config, 'tts_base')} (cloned voices)",
        f"voice: {voice or config.voice.default}, language: {config.voice.language}",
        f"LLM: {config.llm.model} at {redact_url(config.llm.base_url)}",
    ]


def _where(config: Config, key: str) -> str:
    """A model and, when it is served remotely, by which server."""
    url = getattr(config.remote, f"{key}_url")
    return f"{getattr(config.models, key)}" + (f" at {url}" if url else "")


def _ready_hint(options: TalkOptions) -> str:
    if options.text_mode:
        return "type a message and press Enter (/voice NAME, /voices, /quit)"
    if options.input_file:
        return "playing the input file"
    return "speak when you are ready (Ctrl-C to stop)"
