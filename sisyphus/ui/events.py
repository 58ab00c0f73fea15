"""Events for the UI and the transcript that `sisyphus.frames` does not define (yet).

They travel on the same event queue as `StateChanged`, `UserSaid`, ... . CUDA status and
memory snapshots are carried as the plain objects `sisyphus.runtime` returns
(`CudaStatus`, `MemorySnapshot`); the UI reads their attributes by name, so it never
imports torch and any object with those attributes will do.

This module imports nothing but the standard library: a stage may emit these events
without pulling in rich.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CudaUpdate:
    """CUDA as the runtime sees it (at startup, and again if the device is lost)."""

    status: object  # CudaStatus: available, device_name, capability, torch_version, ...


@dataclass(frozen=True)
class MemoryUpdate:
    """A memory snapshot; sent periodically, so views must keep it cheap."""

    snapshot: object  # MemorySnapshot: rss_bytes, gpu_allocated/reserved/total_bytes


@dataclass(frozen=True)
class ModelsLoaded:
    """The models resident now; the whole set each time, so swaps and lazy loads show."""

    models: tuple[str, ...]  # "asr", "tts_custom", "tts_base"
    device: str = ""
    dtype: str = ""
    load_seconds: tuple[tuple[str, float], ...] = ()  # (model, seconds its load took)


@dataclass(frozen=True)
class VoiceChanged:
    """The voice replies are spoken in (the start voice, then each `/voice NAME`)."""

    name: str
    kind: str = ""  # "preset" | "cloned"


@dataclass(frozen=True)
class ConfigSummary:
    """What the session runs with, one short line per topic, shown at startup."""

    lines: tuple[str, ...]


@dataclass(frozen=True)
class InputLine:
    """The line being typed in `--text` mode under the dashboard ("" after Enter; None
    once typing is over, which hides the line)."""

    text: str | None
