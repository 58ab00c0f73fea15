"""What a benchmark run measured: figures with every raw value, notes, and the environment.

Stages add figures as they go; the report renders one rich table at the end and writes
the same content as JSON, raw values included, so two runs (or two machines) can be
compared later without trusting anyone's rounding. Fast-path states are read when the
report is rendered or written, because models report them while loading and warming up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sisyphus.bench.stats import median, p90
from sisyphus.runtime import fastpath

STAGE_ORDER = ("vad", "turn", "asr", "tts", "llm", "pipeline", "aec", "memory")


@dataclass
class Figure:
    stage: str  # "vad" | "asr" | "tts" | "llm" | "pipeline" | "memory"
    name: str  # what was measured, e.g. "5 s utterance"
    unit: str  # "ms", "x" (a ratio or real-time factor), "GB", "tok/s"
    values: list[float]  # every repeat after the warm-up
    note: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # structured facts (frames, tokens) for the JSON

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return median(self.values) if self.values else float("nan")

    @property
    def p90(self) -> float:
        return p90(self.values) if self.values else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "name": self.name,
            "unit": self.unit,
            "n": self.n,
            "median": self.median,
            "p90": self.p90,
            "values": [float(v) for v in self.values],
            "note": self.note,
            "meta": self.meta,
        }


@dataclass
class BenchReport:
    figures: list[Figure] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)  # the stages asked for, in run order

    def add(self, stage: str, name: str, unit: str, values: Sequence[float], note: str = "",
            meta: dict[str, Any] | None = None) -> Figure:
        """Record one figure; NaN and infinite values are refused because a median over them lies."""
        floats = [float(v) for v in values]
        if not all(np.isfinite(floats)):
            raise ValueError(f"{stage}/{name}: non-finite values {floats}")
        figure = Figure(stage, name, unit, floats, note, dict(meta or {}))
        self.figures.append(figure)
        return figure

    def note(self, stage: str, text: str) -> None:
        """A remark shown under the table (a fallback, a forced length, a skipped stage)."""
        self.notes.append((stage, text))

    def find(self, stage: str, name: str) -> Figure | None:
        return next((f for f in self.figures if f.stage == stage and f.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": list(self.stages),
            "environment": self.environment,
            "figures": [f.to_json() for f in self._ordered()],
            "notes": [{"stage": stage, "text": text} for stage, text in self.notes],
            "fast_paths": [
                {"name": p.name, "enabled": p.enabled, "detail": p.detail} for p in fastpath.states().values()
            ],
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path

    def render(self, console: Any) -> None:
        """The table, then notes and fast paths, on a rich console."""
        from rich.table import Table

        env = self.environment
        table = Table(title=_title(env), caption=_caption(env), title_justify="left", caption_justify="left")
        for column, justify in (("stage", "left"), ("figure", "left"), ("median", "right"), ("p90", "right"),
                                ("unit", "left"), ("n", "right"), ("note", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for f in self._ordered():
            table.add_row(f.stage, f.name, _fmt(f.median), _fmt(f.p90), f.unit, str(f.n), f.note)
        console.print(table)
        for stage, text in self.notes:
            console.print(f"[dim]{stage}:[/dim] {text}", highlight=False)
        paths = fastpath.states()
        if paths:
            console.print("fast paths: " + "; ".join(p.describe() for p in paths.values()), highlight=False)

    def _ordered(self) -> list[Figure]:
        """Stage order as in a turn (vad → ... → memory); figures keep their order within a stage."""
        rank = {name: i for i, name in enumerate(STAGE_ORDER)}
        return sorted(self.figures, key=lambda f: rank.get(f.stage, len(rank)))


def _title(env: dict[str, Any]) -> str:
    device = env.get("gpu_name") or env.get("device", "?")
    weights = f"random weights, {env.get('size')} size" if env.get("random_weights") else "configured models"
    return f"sisyphus bench · {device} · {env.get('dtype', '?')} · {weights}"


def _caption(env: dict[str, Any]) -> str | None:
    if not env.get("random_weights"):
        return None
    what = {
        "reduced": "reduced models (official widths, fewer layers; the default on a CPU)",
        "tiny": "tiny test models (small widths and few layers)",
    }.get(env.get("size", ""))
    if what is None:
        return None
    return f"{what}: not the real models' times; --size full measures those"


def _fmt(value: float) -> str:
    """Enough digits to compare, never more: 0.123, 1.23, 12.3, 123."""
    magnitude = abs(value)
    if not np.isfinite(value):
        return "-"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
