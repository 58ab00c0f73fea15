"""One voice folder's metadata file, voice.yaml: what it holds and how it is checked.

Kept apart from the library's folder handling so the format is in one place: the library
writes records with `write_yaml` and reads folders back with `read_voice`, which
refuses (with a VoiceError naming the problem) anything a hand edit or a crash could
have broken.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from sisyphus.errors import VoiceError
from sisyphus.yamlread import preview

VOICE_FILE = "voice.yaml"
REFERENCE_FILE = "reference.wav"
PROMPT_FILE = "prompt.safetensors"
REFERENCE_RATE_HZ = 24000
FORMAT_VERSION = 1
# The clone prompt's safetensors metadata key (tts/qwen3/prompt.py writes it).
PROMPT_META_KEY = "sisyphus_clone_prompt"
MAX_PROMPT_HEADER_BYTES = 1 << 20
NAME_MAX_CHARS = 64
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*\Z")  # \Z, not $: a name never ends in a newline

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
    """voice.yaml as a mapping; a hand edit gone wrong (or an alias bomb) is a VoiceError."""
    from sisyphus.yamlread import read_yaml_file

    if not path.exists():
        raise VoiceError(f"{path.name} is missing")
    try:
        data = read_yaml_file(path, VoiceError, "")
    except VoiceError as exc:
        raise VoiceError(exc.message.replace(str(path), path.name)) from exc
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
            raise VoiceError(f"{VOICE_FILE}: '{key}' has the wrong type ({preview(record[key])})")
    if record["name"] != folder.name:
        raise VoiceError(f"{VOICE_FILE} names {preview(record['name'])}, not the folder's name")
    if record["kind"] != "cloned":
        raise VoiceError(f"{VOICE_FILE}: kind must be 'cloned', got {preview(record['kind'])}")
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


def check_prompt_file(path: Path) -> None:
    """Whether a stored clone prompt is whole, from its header alone (no torch, no tensors).

    A safetensors file is an 8-byte header length, a JSON header naming each tensor's
    byte range, then the data: a truncated, overwritten or foreign file fails here with
    what is wrong, instead of failing in the TTS thread on every reply.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 0 < length <= min(MAX_PROMPT_HEADER_BYTES, size - 8):
                raise VoiceError(f"{PROMPT_FILE} is not a safetensors file (or is cut short)")
            header = json.loads(file.read(length))
    except OSError as exc:
        raise VoiceError(f"{PROMPT_FILE} cannot be read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise VoiceError(f"{PROMPT_FILE} has a damaged header") from exc
    if not isinstance(header, dict):
        raise VoiceError(f"{PROMPT_FILE} has a damaged header")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or PROMPT_META_KEY not in meta or "speaker_embedding" not in header:
        raise VoiceError(f"{PROMPT_FILE} is not a Sisyphus clone prompt")
    data_bytes = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data_bytes):
            raise VoiceError(f"{PROMPT_FILE} is cut short or damaged (tensor {preview(name)})")
