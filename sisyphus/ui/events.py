"""Events for the UI and the transcript that `sisyphus.frames` does not define (yet).

They travel on the same event queue as `StateChanged`, `UserSaid`, ... . CUDA status and
memory snapshots are carried as the plain objects `sisyphus.runtime` returns
(`CudaStatus`, `MemorySnapshot`); the UI reads their attributes by name, so it never
imports torch and any object with those attributes will do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sisyphus.config import Config


@dataclass(frozen=True)
class StatusUpdate:
    """A fresh look at the hardware; a field left None means "unchanged"."""

    cuda: object | None = None  # CudaStatus: available, device_name, capability, ...
    memory: object | None = None  # MemorySnapshot: rss_bytes, gpu_*_bytes


@dataclass(frozen=True)
class ModelLoaded:
    """A model is resident now (at startup, lazily on first use, or swapped back in)."""

    role: str  # "asr" | "tts-custom" | "tts-base" | ...
    name: str  # Hub repo id or local folder
    load_s: float
    device: str = ""
    memory: object | None = None  # MemorySnapshot taken right after the load


@dataclass(frozen=True)
class ModelUnloaded:
    """A model left the GPU (the `swap` memory strategy)."""

    role: str
    name: str


@dataclass(frozen=True)
class VoiceChanged:
    name: str
    kind: str = ""  # "preset" | "clone"


@dataclass(frozen=True)
class ConfigSummary:
    """What the session runs with, as (label, value) pairs in display order."""

    items: tuple[tuple[str, str], ...]


def config_summary(config: Config) -> ConfigSummary:
    """The settings a user wants to see at startup; secrets are left out on purpose."""
    llm = config.llm
    items = (
        ("device", config.device),
        ("dtype", config.dtype),
        ("memory", config.memory),
        ("barge-in", "on" if config.barge_in else "off"),
        ("asr", config.models.asr),
        ("tts", f"{config.models.tts_custom}, {config.models.tts_base}"),
        ("voice", f"{config.voice.default} ({config.voice.language})"),
        ("llm", f"{llm.model} @ {llm.base_url}"),
        ("input", config.audio.input_device or "default"),
        ("output", config.audio.output_device or "default"),
    )
    return ConfigSummary(items=items)
