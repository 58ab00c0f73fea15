"""The full-screen view of `sisyphus talk`: a rich Live display redrawn 5 times a second.

`handle` only updates a little state under a lock (it runs on the event loop); drawing
happens on rich's refresh thread through `render`, so a slow terminal never stalls the
conversation. `render` is public so tests can draw the screen without Live.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sisyphus.frames import (
    AssistantSaid,
    BargeIn,
    EchoStatus,
    InputLevel,
    Notice,
    PreemptiveReply,
    StateChanged,
    TurnEnded,
    TurnLatency,
    UserSaid,
)
from sisyphus.safetext import display_safe
from sisyphus.ui.events import (
    ConfigSummary,
    CudaUpdate,
    MemoryUpdate,
    InputLine,
    ModelsLoaded,
    VoiceChanged,
)
from sisyphus.ui.plain import NOTHING_HEARD
from sisyphus.ui.format import (
    LATENCY_FIELDS,
    barge_in_line,
    clamp_dbfs,
    cuda_lines,
    memory_line,
    models_line,
    preempt_line,
    turn_end_line,
    turn_end_short,
)

METER_WIDTH = 30
METER_FLOOR_DBFS = -60.0
MEDIAN_WINDOW = 1000  # turns kept for the medians; a session rarely gets near it
MIN_TRANSCRIPT_ROWS = 3
PANEL_BORDER_ROWS = 2
PANEL_BORDER_COLUMNS = 4  # "│ " and " │"
SPEAKER_COLUMNS = len("sisyphus") + 1  # the speaker column and the gap after it

STATE_STYLES = {
    "idle": "dim",
    "listening": "bold green",
    "transcribing": "bold cyan",
    "thinking": "bold yellow",
    "speaking": "bold magenta",
}
NOTICE_STYLES = {"info": "dim", "warning": "yellow", "error": "bold red"}
LATENCY_HEADERS = ("asr", "first token", "first audio", "audible", "voice-to-voice")
TYPE_PROMPT = "type › "


@dataclass(frozen=True)
class _Line:
    speaker: str  # "you" | "sisyphus"
    text: str
    interrupted: bool = False
    turn_id: int | None = None
    notes: tuple[str, ...] = ()  # how the user's turn ended: "complete 0.93", "prepared reply"


class Dashboard:
    """Header (state, voice, models), CUDA + memory, mic meter, transcript, latencies."""

    def __init__(
        self,
        console: Console | None = None,
        max_lines: int = 12,
        *,
        refresh_hz: float = 5.0,
        latency_rows: int = 5,
        notice_lines: int = 5,
    ) -> None:
        self.console = console if console is not None else Console()
        self._refresh_hz = refresh_hz
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._rerouted: list[tuple[logging.StreamHandler, TextIO]] = []
        self._state = "idle"
        self._turn_id = 0
        self._voice = ""
        self._models = ""
        self._config: tuple[str, ...] = ()
        self._cuda: list[str] = []
        self._memory = ""
        self._level_dbfs: float | None = None
        self._lines: deque[_Line] = deque(maxlen=max_lines)
        self._latencies: deque[TurnLatency] = deque(maxlen=latency_rows)
        self._samples: dict[str, deque[float]] = {
            attr: deque(maxlen=MEDIAN_WINDOW) for attr, _ in LATENCY_FIELDS
        }
        self._notices: deque[tuple[str, str]] = deque(maxlen=notice_lines)
        self._last_turn_end = ""
        self._prepared: dict[bool, int] = {True: 0, False: 0}  # preemptive hits and misses
        self._last_prepared = ""
        self._typed: str | None = None  # the line being typed (--text); None: no keyboard
        self._echo = ""
        self._barge_ins: dict[str, int] = {"paused": 0, "resumed": 0, "cancelled": 0}

    # --- View ---

    def start(self) -> None:
        if self._live is not None:
            return
        streams = sys.stdout, sys.stderr
        self._live = Live(
            get_renderable=self.render,
            console=self.console,
            refresh_per_second=self._refresh_hz,
        )
        self._live.start()
        self._reroute_logging(*streams)

    def stop(self) -> None:
        live, self._live = self._live, None
        if live is None:
            return
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._rerouted = []
        live.stop()  # draws the last frame, so the final screen stays visible

    def _reroute_logging(self, stdout: TextIO, stderr: TextIO) -> None:
        """Send root log handlers that write to the terminal through Live's proxies.

        `logging.basicConfig` binds its handler to the stderr of the time; unrouted, a
        warning would be written over the live display instead of above it.
        """
        proxies = {id(stdout): sys.stdout, id(stderr): sys.stderr}
        for handler in logging.getLogger().handlers:
            if not isinstance(handler, logging.StreamHandler):
                continue
            proxy = proxies.get(id(handler.stream))
            if proxy is not None and proxy is not handler.stream:
                self._rerouted.append((handler, handler.setStream(proxy)))

    def handle(self, event: object) -> None:
        event = display_safe(event)  # model and server text never drives the terminal
        with self._lock:
            self._update(event)

    # --- state ---

    def _update(self, event: object) -> None:  # noqa: C901 - one flat dispatch
        if isinstance(event, InputLevel):
            self._level_dbfs = event.rms_dbfs
        elif isinstance(event, StateChanged):
            self._state = str(getattr(event.state, "value", event.state))
            self._turn_id = event.turn_id
        elif isinstance(event, UserSaid):
            self._lines.append(_Line("you", event.text, turn_id=event.turn_id))
        elif isinstance(event, AssistantSaid):
            self._lines.append(_Line("sisyphus", event.text, event.interrupted))
        elif isinstance(event, TurnLatency):
            self._latencies.append(event)
            for attr, _ in LATENCY_FIELDS:
                value = getattr(event, attr)
                if value is not None:
                    self._samples[attr].append(value)
        elif isinstance(event, MemoryUpdate):
            self._memory = memory_line(event.snapshot)
        elif isinstance(event, CudaUpdate):
            self._cuda = cuda_lines(event.status)
        elif isinstance(event, ModelsLoaded):
            self._models = models_line(event)
        elif isinstance(event, VoiceChanged):
            self._voice = f"{event.name} ({event.kind})" if event.kind else event.name
            self._config = tuple(_with_voice(line, event.name) for line in self._config)
        elif isinstance(event, InputLine):
            self._typed = event.text
        elif isinstance(event, ConfigSummary):
            self._config = event.lines
        elif isinstance(event, Notice):
            self._notices.append((event.level, event.text))
        elif isinstance(event, TurnEnded):
            self._last_turn_end = f"turn {event.turn_id}: {turn_end_line(event.decision)}"
            self._annotate(event.turn_id, turn_end_short(event.decision))
        elif isinstance(event, PreemptiveReply):
            self._prepared[event.hit] += 1
            self._last_prepared = preempt_line(event)
            if event.hit and event.turn_id is not None:
                self._annotate(event.turn_id, "prepared reply")
        elif isinstance(event, EchoStatus):
            self._echo = _echo_short(event, self._echo)
        elif isinstance(event, BargeIn):
            self._barge_ins[event.action] = self._barge_ins.get(event.action, 0) + 1
            if event.action != "paused":
                self._notices.append(("info", f"barge-in turn {event.turn_id}: {barge_in_line(event)}"))

    def _annotate(self, turn_id: int, note: str) -> None:
        """Add a note to the user's line of that turn (the newest one; older turns stay as they were)."""
        for index in range(len(self._lines) - 1, -1, -1):
            line = self._lines[index]
            if line.speaker == "you" and line.turn_id == turn_id:
                self._lines[index] = dataclasses.replace(line, notes=(*line.notes, note))
                return

    # --- drawing ---

    def render(self) -> RenderableType:
        """The whole screen as one renderable (called on rich's refresh thread).

        The transcript gets the rows the other panels leave free, newest lines first,
        so the latency table and notices stay on screen in a small terminal.
        """
        width, height = self.console.size
        with self._lock:  # copy the state out; measuring and wrapping happen unlocked
            header = Panel(self._header(), title="Sisyphus", title_align="left")
            latency = Panel(
                self._latency_table(), title="Latency per stage (ms); voice-to-voice = end of speech to first sound", title_align="left"
            )
            notices = [
                Text(f"{level}: {text}", style=NOTICE_STYLES.get(level, ""))
                for level, text in self._notices
            ]
            lines = list(self._lines)
            typed = None if self._typed is None else _input_line(self._typed, width)
        used = sum(self._rows(part, width) for part in (header, latency, *notices, *([typed] if typed else [])))
        rows = max(MIN_TRANSCRIPT_ROWS, height - used - PANEL_BORDER_ROWS - 1)
        transcript = self._transcript(lines, rows, width - PANEL_BORDER_COLUMNS)
        transcript_panel = Panel(transcript, title="Transcript", title_align="left")
        return Group(header, transcript_panel, *([typed] if typed else []), latency, *notices)

    def _rows(self, renderable: RenderableType, width: int) -> int:
        options = self.console.options.update(width=width)
        return len(self.console.render_lines(renderable, options, pad=False))

    def _header(self) -> RenderableType:
        status = Text()
        status.append("state ", style="dim")
        status.append(self._state.upper(), style=STATE_STYLES.get(self._state, "bold"))
        status.append(f"   turn {self._turn_id}   ", style="dim")
        status.append("voice ", style="dim")
        status.append(self._voice or "—")
        models = Text()
        models.append("models ", style="dim")
        models.append(self._models or "pending", style="" if self._models else "dim")
        rows: list[RenderableType] = [status, models]
        rows += [Text(line, style="dim") for line in self._config]
        cuda_style = "green" if self._cuda[:1] and self._cuda[0].startswith("CUDA:") else "yellow"
        rows += [Text(line, style=cuda_style) for line in self._cuda or ["CUDA status pending"]]
        rows.append(Text(self._memory or "memory pending"))
        rows.append(self._meter())
        rows += self._turn_lines()
        if self._echo or any(self._barge_ins.values()):
            rows.append(self._audio_line())
        return Group(*rows)

    def _turn_lines(self) -> list[Text]:
        """The latest end-of-turn decision and the preemptive replies' hits and misses."""
        lines = []
        if self._last_turn_end:
            lines.append(Text("end of ", style="dim") + Text(self._last_turn_end))
        hits, misses = self._prepared[True], self._prepared[False]
        if hits or misses:
            line = Text("prepared replies ", style="dim")
            line.append(f"{hits} hit{'s' * (hits != 1)}, {misses} miss{'es' * (misses != 1)}")
            line.append(f" — {self._last_prepared}", style="dim")
            lines.append(line)
        return lines

    def _audio_line(self) -> Text:
        """One row: echo cancellation's state and last figure, and the barge-ins so far."""
        line = Text()
        line.append("echo ", style="dim")
        line.append(self._echo or "—")
        line.append("   barge-ins ", style="dim")
        line.append(" / ".join(f"{n} {action}" for action, n in self._barge_ins.items()))
        return line

    def _meter(self) -> Text:
        meter = Text()
        meter.append("mic ", style="dim")
        if self._level_dbfs is None:
            meter.append("░" * METER_WIDTH + " no input", style="dim")
            return meter
        level = clamp_dbfs(self._level_dbfs, METER_FLOOR_DBFS)
        filled = round((level - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS * METER_WIDTH)
        style = "red" if level > -6 else "yellow" if level > -20 else "green"
        meter.append("█" * filled, style=style)
        meter.append("░" * (METER_WIDTH - filled), style="dim")
        shown = "-inf" if level <= METER_FLOOR_DBFS else f"{level:.0f}"
        meter.append(f" {shown} dBFS")
        return meter

    def _transcript(self, lines: list[_Line], max_rows: int, width: int) -> RenderableType:
        if not lines:
            return Text("(nothing said yet)", style="dim")
        text_width = max(10, width - SPEAKER_COLUMNS)
        rows: list[tuple[Text, Text]] = []
        left = max_rows
        for line in reversed(lines):
            said = Text(line.text) if line.text else Text(NOTHING_HEARD, style="dim")
            if line.interrupted:
                said.append(" [interrupted]", style="yellow")
            if line.notes:
                said.append(f" [{' · '.join(line.notes)}]", style="dim")
            if self._height(said, text_width) > left:
                if not rows:  # the newest line alone is too tall: show its end
                    rows.append((_speaker(line.speaker), self._tail(said, left, text_width)))
                break
            rows.append((_speaker(line.speaker), said))
            left -= self._height(said, text_width)
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, width=SPEAKER_COLUMNS - 1)
        table.add_column()
        for who, said in reversed(rows):
            table.add_row(who, said)
        return table

    def _height(self, text: Text, width: int) -> int:
        return len(text.wrap(self.console, width))

    def _tail(self, text: Text, max_rows: int, width: int) -> Text:
        keep = max(1, max_rows * width)
        while True:
            tail = Text("…") + text[-keep:]
            if keep <= 1 or self._height(tail, width) <= max_rows:
                return tail
            keep -= max(1, width // 4)

    def _latency_table(self) -> RenderableType:
        table = Table(box=None, padding=(0, 2), show_edge=False)
        table.add_column("turn", justify="right")
        for header in LATENCY_HEADERS:
            table.add_column(header, justify="right")
        table.add_column("TTS RTF", justify="right")
        for event in self._latencies:
            rtf = "—" if event.tts_rtf is None else f"{event.tts_rtf:.2f}"
            table.add_row(
                str(event.turn_id), *(_number(getattr(event, a)) for a, _ in LATENCY_FIELDS), rtf
            )
        if any(self._samples.values()):
            medians = [
                _number(statistics.median(values) if values else None)
                for values in self._samples.values()
            ]
            table.add_row("median", *medians, "", style="bold")
        return table


def _with_voice(line: str, voice: str) -> str:
    """The config summary's "voice: X, language: Y" line, following voice switches."""
    if not line.startswith("voice: "):
        return line
    _, sep, rest = line.partition(", ")
    return f"voice: {voice}{sep}{rest}"


def _input_line(typed: str, width: int) -> Text:
    """"type › hello▏" on one row: the end of a line longer than the screen."""
    room = max(8, width - len(TYPE_PROMPT) - 2)
    shown = typed if len(typed) <= room else "…" + typed[-(room - 1):]
    line = Text(TYPE_PROMPT, style="bold cyan")
    line.append(shown)
    line.append("▏", style="blink")
    if not typed:
        line.append(" type a message, Enter to send (/voice NAME, /voices, /quit)", style="dim")
    return line


def _echo_short(event: EchoStatus, before: str) -> str:
    """"on (AEC3 ...)", then "on, 31 dB less echo on the last reply" (a reply without echo keeps the last figure)."""
    if event.state != "on" or event.seconds <= 0:
        return f"{event.state} ({event.detail})" if event.detail else event.state
    if event.echo_reduction_db is None:
        return before or "on"
    return f"on, {event.echo_reduction_db:.0f} dB less echo on the last reply"


def _speaker(name: str) -> Text:
    return Text(name, style="bold cyan" if name == "you" else "bold")


def _number(ms: float | None) -> str:
    return "—" if ms is None else f"{ms:.0f}"
