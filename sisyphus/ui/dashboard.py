"""The full-screen view of `sisyphus talk`: a rich Live display redrawn a few times a second.

`handle` only updates a little state under a lock (it runs on the event loop); drawing
happens on rich's refresh thread through `render`, so a slow terminal never stalls the
conversation. `render` is public so tests and `--plain`-less logs can draw it without Live.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sisyphus.frames import (
    AssistantSaid,
    InputLevel,
    Notice,
    StateChanged,
    TurnLatency,
    UserSaid,
)
from sisyphus.ui.events import (
    ConfigSummary,
    ModelLoaded,
    ModelUnloaded,
    StatusUpdate,
    VoiceChanged,
)
from sisyphus.ui.format import (
    LATENCY_FIELDS,
    clamp_dbfs,
    cuda_lines,
    memory_line,
    short_model_name,
)

METER_WIDTH = 30
METER_FLOOR_DBFS = -60.0
MEDIAN_WINDOW = 1000  # turns kept for the medians; a session rarely gets near it

STATE_STYLES = {
    "idle": "dim",
    "listening": "bold green",
    "transcribing": "bold cyan",
    "thinking": "bold yellow",
    "speaking": "bold magenta",
}
NOTICE_STYLES = {"info": "dim", "warning": "yellow", "error": "bold red"}
LATENCY_HEADERS = ("asr", "first token", "first audio", "voice-to-voice")


@dataclass(frozen=True)
class _Line:
    speaker: str  # "you" | "sisyphus"
    text: str
    interrupted: bool = False


class Dashboard:
    """Header (state, voice, models), CUDA + memory, mic meter, transcript, latencies."""

    def __init__(
        self,
        console: Console | None = None,
        max_lines: int = 12,
        *,
        refresh_hz: float = 8.0,
        latency_rows: int = 5,
        notice_lines: int = 3,
    ) -> None:
        self.console = console if console is not None else Console()
        self._refresh_hz = refresh_hz
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._state = "idle"
        self._turn_id = 0
        self._voice = ""
        self._models: dict[str, tuple[str, float]] = {}
        self._config: tuple[tuple[str, str], ...] = ()
        self._cuda: list[str] = []
        self._memory = ""
        self._level_dbfs: float | None = None
        self._lines: deque[_Line] = deque(maxlen=max_lines)
        self._latencies: deque[TurnLatency] = deque(maxlen=latency_rows)
        self._samples: dict[str, deque[float]] = {
            attr: deque(maxlen=MEDIAN_WINDOW) for attr, _ in LATENCY_FIELDS
        }
        self._notices: deque[tuple[str, str]] = deque(maxlen=notice_lines)

    # --- View ---

    def start(self) -> None:
        if self._live is not None:
            return
        self._live = Live(
            get_renderable=self.render,
            console=self.console,
            refresh_per_second=self._refresh_hz,
        )
        self._live.start()

    def stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()  # draws the last frame, so the final screen stays visible

    def handle(self, event: object) -> None:
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
            self._lines.append(_Line("you", event.text))
        elif isinstance(event, AssistantSaid):
            self._lines.append(_Line("sisyphus", event.text, event.interrupted))
        elif isinstance(event, TurnLatency):
            self._latencies.append(event)
            for attr, _ in LATENCY_FIELDS:
                value = getattr(event, attr)
                if value is not None:
                    self._samples[attr].append(value)
        elif isinstance(event, StatusUpdate):
            if event.cuda is not None:
                self._cuda = cuda_lines(event.cuda)
            if event.memory is not None:
                self._memory = memory_line(event.memory)
        elif isinstance(event, ModelLoaded):
            self._models[event.role] = (event.name, event.load_s)
            if event.memory is not None:
                self._memory = memory_line(event.memory)
        elif isinstance(event, ModelUnloaded):
            self._models.pop(event.role, None)
        elif isinstance(event, VoiceChanged):
            self._voice = f"{event.name} ({event.kind})" if event.kind else event.name
        elif isinstance(event, ConfigSummary):
            self._config = event.items
        elif isinstance(event, Notice):
            self._notices.append((event.level, event.text))

    # --- drawing ---

    def render(self) -> RenderableType:
        """The whole screen as one renderable (called on rich's refresh thread)."""
        with self._lock:
            header = self._header()
            transcript = self._transcript()
            latency = self._latency_table()
            notices = [
                Text(f"{level}: {text}", style=NOTICE_STYLES.get(level, ""))
                for level, text in self._notices
            ]
        return Group(
            Panel(header, title="Sisyphus", title_align="left"),
            Panel(transcript, title="Transcript", title_align="left"),
            Panel(latency, title="Latency (ms after end of speech)", title_align="left"),
            *notices,
        )

    def _header(self) -> RenderableType:
        status = Text()
        status.append("state ", style="dim")
        status.append(self._state.upper(), style=STATE_STYLES.get(self._state, "bold"))
        status.append(f"   turn {self._turn_id}   ", style="dim")
        status.append("voice ", style="dim")
        status.append(self._voice or "—")
        models = Text("models ", style="dim")
        if self._models:
            models.append(
                " · ".join(
                    f"{role} {short_model_name(name)} ({load_s:.1f} s)"
                    for role, (name, load_s) in self._models.items()
                ),
                style="",
            )
        else:
            models.append("none loaded", style="")
        rows: list[RenderableType] = [status, models]
        if self._config:
            rows.append(
                Text("config " + " · ".join(f"{k} {v}" for k, v in self._config), style="dim")
            )
        cuda_style = "green" if self._cuda[:1] and self._cuda[0].startswith("CUDA:") else "yellow"
        rows += [Text(line, style=cuda_style) for line in self._cuda or ["CUDA status pending"]]
        rows.append(Text(self._memory or "memory pending"))
        rows.append(self._meter())
        return Group(*rows)

    def _meter(self) -> Text:
        meter = Text("mic ", style="dim")
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

    def _transcript(self) -> RenderableType:
        if not self._lines:
            return Text("(nothing said yet)", style="dim")
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column()
        for line in self._lines:
            who = Text(line.speaker, style="bold cyan" if line.speaker == "you" else "bold")
            said = Text(line.text)
            if line.interrupted:
                said.append(" [interrupted]", style="yellow")
            table.add_row(who, said)
        return table

    def _latency_table(self) -> RenderableType:
        table = Table(box=None, padding=(0, 2), show_edge=False)
        table.add_column("turn", justify="right")
        for header in LATENCY_HEADERS:
            table.add_column(header, justify="right")
        for event in self._latencies:
            table.add_row(
                str(event.turn_id), *(_number(getattr(event, a)) for a, _ in LATENCY_FIELDS)
            )
        if any(self._samples.values()):
            medians = [
                _number(statistics.median(values) if values else None)
                for values in self._samples.values()
            ]
            table.add_row("median", *medians, style="bold")
        return table


def _number(ms: float | None) -> str:
    return "—" if ms is None else f"{ms:.0f}"
