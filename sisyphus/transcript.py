"""The session transcript: one JSON object per line, written as the conversation goes.

Each line is flushed to the operating system before `handle` returns, so a crash or a
kill of the process loses nothing; it is fsync'ed on a thread of its own right after, so
a power cut loses at most the last moment. (An fsync on the event loop stalled voice
detection and barge-in for 0.6-0.7 s under disk load.) Nothing is buffered for the end. A
session that ends normally gets a final `{"type": "end"}` line, so a reader can tell a
finished session from one that was cut off.

Line types: `session` (first; the meta given at start and `started`), `user`,
`assistant` (the text as played, `interrupted`, `full_text` the LLM produced and its
`finish_reason`), `latency` (ms after the end of the user's speech), `turn_end` (why the
endpointer ended the turn: reason, silence waited, Smart Turn's probability and cost),
`preempt` (a reply prepared at a pause: `hit` true when it played, false when it was
dropped unheard, with what the user had said then), `barge_in` (a reply paused by speech,
then resumed or cancelled), `echo` (the echo canceller's state, then its echo reduction
after each reply), `voice` (a switch with `/voice NAME`), `notice` (warnings and errors),
`end`. Every line but the first carries `time` (ISO 8601, local time with offset).

Text is stored raw, as the models produced it; control characters, bidi formats and lone
surrogates are written as JSON escapes, so `cat` on a transcript never drives the
terminal. Notices and the session meta have credentials in URLs redacted.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sisyphus.errors import SisyphusError
from sisyphus.frames import (
    AssistantSaid,
    BargeIn,
    EchoStatus,
    Notice,
    PreemptiveReply,
    TurnEnded,
    TurnLatency,
    UserSaid,
)
from sisyphus.safetext import escape_json_controls, redact_urls
from sisyphus.ui.events import VoiceChanged

logger = logging.getLogger(__name__)

APP_NAME = "sisyphus"
SESSIONS_FOLDER = "sessions"
NOTICE_LEVELS_KEPT = frozenset({"warning", "error"})


def default_transcript_dir(
    *,
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
    home: Path | None = None,
) -> Path:
    """<user data folder>/sessions, found the way platformdirs would, without the dependency.

    $SISYPHUS_DATA_DIR wins, then $XDG_DATA_HOME/sisyphus, then the platform's usual
    place. The keyword arguments exist for tests; callers use the defaults.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = Path.home() if home is None else home
    return _data_dir(env, platform, home) / SESSIONS_FOLDER


def _data_dir(env: Mapping[str, str], platform: str, home: Path) -> Path:
    if env.get("SISYPHUS_DATA_DIR"):
        return Path(env["SISYPHUS_DATA_DIR"]).expanduser()
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore relative paths
        return Path(xdg) / APP_NAME
    if platform.startswith("win"):
        local = env.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
        return base / APP_NAME
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_NAME
    return home / ".local" / "share" / APP_NAME


def _now_iso(clock: Callable[[], datetime]) -> str:
    return clock().astimezone().isoformat(timespec="milliseconds")


class TranscriptWriter:
    """Appends a session's events to `<folder>/<YYYYmmdd-HHMMSS>-<id>.jsonl` as they come."""

    def __init__(
        self,
        folder: Path,
        session_meta: Mapping[str, Any],
        *,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self._clock = clock
        self._closed = False
        self._failed = False
        self._turn_id: int | None = None  # the latest turn seen, for notices
        started = clock().astimezone()  # local time, like the user's clock on the wall
        name = f"{started:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}.jsonl"
        folder = Path(folder).expanduser()
        self.path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # "x": two sessions started in the same second never share a file.
            self._file: IO[str] = open(self.path, "x", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise SisyphusError(
                f"cannot write the session transcript in {folder}: {exc.strerror or exc}",
                "set SISYPHUS_DATA_DIR to a writable folder",
            ) from exc
        self._synced = _Fsyncer(self._file.fileno())
        meta = {
            k: redact_urls(v) if isinstance(v, str) else v
            for k, v in session_meta.items()
            if k not in ("type", "started")
        }
        started_iso = started.isoformat(timespec="milliseconds")
        self._write({"type": "session", **meta, "started": started_iso})

    def handle(self, event: object) -> None:
        """Write the events a transcript keeps; every other event is ignored."""
        turn_id = getattr(event, "turn_id", None)
        if isinstance(turn_id, int):
            self._turn_id = turn_id
        record = _record(event)
        if record is None:
            return
        if record["type"] in ("notice", "voice"):
            record["turn_id"] = self._turn_id
        if self._closed:
            logger.warning("transcript %s is closed; dropped a %s line", self.path, record["type"])
            return
        self._write({**record, "time": _now_iso(self._clock)})

    def close(self, reason: str = "ended") -> None:
        """Mark the session as finished; later calls do nothing."""
        if self._closed:
            return
        self._write({"type": "end", "reason": reason, "time": _now_iso(self._clock)})
        self._closed = True
        self._synced.stop()  # the last fsync done before the file closes
        try:
            os.fsync(self._file.fileno())
        except OSError:
            pass  # the lines are with the operating system; a failed sync was reported
        self._file.close()

    # A TranscriptWriter can be a consumer of `sisyphus.ui.view.Tee`; the owner closes
    # it with the reason (ended, interrupted, error), so stop() leaves it open.
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def _write(self, record: dict[str, Any]) -> None:
        line = escape_json_controls(json.dumps(record, ensure_ascii=False, default=str))
        try:
            self._file.write(line + "\n")
            self._file.flush()
            self._synced.request()
        except OSError as exc:
            # The conversation matters more than its log: report once and carry on.
            if not self._failed:
                logger.error("cannot write the transcript %s: %s", self.path, exc)
            self._failed = True


class _Fsyncer:
    """fsyncs a file on a daemon thread whenever asked: requests that pile up while one
    sync runs are served by the next, so the caller never waits on the disk."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._wanted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sisyphus-transcript-sync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        self._stopping = True
        self._wanted.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            try:
                os.fsync(self._fd)
            except OSError as exc:  # the disk failing: the writes themselves will say so
                logger.debug("transcript fsync failed: %s", exc)


def _record(event: object) -> dict[str, Any] | None:
    if isinstance(event, UserSaid):
        return {"type": "user", "turn_id": event.turn_id, "text": event.text}
    if isinstance(event, AssistantSaid):
        return {
            "type": "assistant",
            "turn_id": event.turn_id,
            "text": event.text,
            "interrupted": event.interrupted,
            "full_text": event.full_text or event.text,
            **({"finish_reason": event.finish_reason} if event.finish_reason else {}),
        }
    if isinstance(event, TurnLatency):
        return {
            "type": "latency",
            "turn_id": event.turn_id,
            "asr_ms": event.asr_ms,
            "llm_first_token_ms": event.llm_first_token_ms,
            "tts_first_audio_ms": event.tts_first_audio_ms,
            "tts_audible_ms": event.tts_audible_ms,
            "voice_to_voice_ms": event.voice_to_voice_ms,
            "tts_rtf": event.tts_rtf,
            **({"extra": dict(event.extra)} if event.extra else {}),
        }
    if isinstance(event, TurnEnded):
        decision = event.decision
        return {"type": "turn_end", "turn_id": event.turn_id, "reason": decision.reason,
                "silence_ms": decision.silence_ms, "probability": decision.probability, "model_ms": decision.model_ms}
    if isinstance(event, PreemptiveReply):
        return {"type": "preempt", "turn_id": event.turn_id, "hit": event.hit, "text": event.text,
                "head_start_ms": event.head_start_ms}
    if isinstance(event, BargeIn):
        return {
            "type": "barge_in",
            "turn_id": event.turn_id,
            "action": event.action,
            "text": event.text,
            "speech_ms": event.speech_ms,
            "pause_ms": event.pause_ms,
            "vad_ms": event.vad_ms,
        }
    if isinstance(event, EchoStatus):
        return {
            "type": "echo",
            "state": event.state,
            "detail": event.detail,
            "echo_reduction_db": event.echo_reduction_db,
            "echo_dbfs": event.echo_dbfs,
            "seconds": event.seconds,
        }
    if isinstance(event, Notice) and event.level in NOTICE_LEVELS_KEPT:
        return {"type": "notice", "level": event.level, "text": redact_urls(event.text)}
    if isinstance(event, VoiceChanged):
        return {"type": "voice", "name": event.name, **({"kind": event.kind} if event.kind else {})}
    return None
