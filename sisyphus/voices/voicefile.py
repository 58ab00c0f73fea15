"""One voice folder's metadata file, voice.yaml: what it holds and how it is checked.

Kept apart from the library's folder handling so the format is in one place: the library
writes records with `write_yaml` and reads folders back with `read_voice`, which
refuses (with a VoiceError naming the problem) anything a hand edit or a crash could
have broken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from sisyphus.errors import VoiceError

VOICE_FILE = "voice.yaml"
REFERENCE_FILE = "reference.wav"
PROMPT_FILE = "prompt.safetensors"
REFERENCE_RATE_HZ = 24000
FORMAT_VERSION = 1
NAME_MAX_CHARS = 64
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

Kind = Literal["cloned", "preset"]
Needs = Literal["tts_base", "tts_custom"]


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    kind: Kind
    # "auto" or a model language; a dialect for the dialect preset speakers.
    language: str
    # What is said in reference.wav; None means x-vector-only cloning.
    transcript: str | None
    # ISO 8601 UTC; "" for presets.
    created: str
    audio_seconds: float
    source_sha256: str
    # Name of the Base model the stored prompt was computed with; "" for presets and for
    # voices cloned with a remote Base server only (no local prompt until one is computed).
    model: str
    # Which configured model speaks this voice (config.models.<needs>).
    needs: Needs
    # The voice's folder; None for presets.
    path: Path | None

    @property
    def x_vector_only(self) -> bool:
        return self.kind == "cloned" and not self.transcript

    @property
    def prompt_path(self) -> Path | None:
        return None if self.path is None else self.path / PROMPT_FILE

    @property
    def has_prompt(self) -> bool:
        """Whether a local clone prompt is stored (not yet for voices cloned remotely)."""
        return self.kind == "cloned" and bool(self.model)

    @property
    def reference_path(self) -> Path | None:
        return None if self.path is None else self.path / REFERENCE_FILE


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VoiceError(f"{path.name} is missing") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise VoiceError(f"{path.name} cannot be read ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise VoiceError(f"{path.name} does not hold a mapping")
    return data


def write_yaml(path: Path, record: dict[str, Any]) -> None:
    text = yaml.safe_dump(record, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")


_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "kind": (str,),
    "language": (str,),
    "transcript": (str, type(None)),
    "created": (str,),
    "audio_seconds": (int, float),
    "source_sha256": (str,),
    "model": (str,),
}


def read_voice(folder: Path) -> VoiceInfo:
    """Parse and check one voice folder; anything wrong is a VoiceError naming the problem."""
    record = read_yaml(folder / VOICE_FILE)
    if isinstance(record.get("created"), datetime):  # a hand-edited, unquoted timestamp
        record["created"] = record["created"].isoformat()
    for key, types_ in _FIELDS.items():
        if key not in record:
            raise VoiceError(f"{VOICE_FILE} lacks '{key}'")
        if not isinstance(record[key], types_) or isinstance(record[key], bool):
            raise VoiceError(f"{VOICE_FILE}: '{key}' has the wrong type ({record[key]!r})")
    if record["name"] != folder.name:
        raise VoiceError(f"{VOICE_FILE} names {record['name']!r}, not the folder's name")
    if record["kind"] != "cloned":
        raise VoiceError(f"{VOICE_FILE}: kind must be 'cloned', got {record['kind']!r}")
    # A voice cloned with only a remote Base server has no local prompt yet ("model" is "").
    for needed in (REFERENCE_FILE, PROMPT_FILE) if record["model"] else (REFERENCE_FILE,):
        if not (folder / needed).is_file():
            raise VoiceError(f"{needed} is missing")
    return VoiceInfo(
        name=record["name"],
        kind="cloned",
        language=record["language"],
        transcript=record["transcript"] or None,
        created=record["created"],
        audio_seconds=float(record["audio_seconds"]),
        source_sha256=record["source_sha256"],
        model=record["model"],
        needs="tts_base",
        path=folder,
    )
