"""The voice library on disk: one folder per cloned voice, plus the model's preset speakers.

Layout (see voices/README.md)::

    <library>/<name>/voice.yaml      name, kind, language, transcript, created, source hash,
                                     the Base model the prompt was computed with
    <library>/<name>/reference.wav   the checked, trimmed 24 kHz mono reference
    <library>/<name>/prompt.pt       the stored clone prompt (ClonePrompt.save)

Every write builds a hidden sibling folder (``.tmp-<name>-<pid>-<hex>``) and renames it
into place, so a crash or Ctrl-C leaves the library as it was and a concurrent `list`
never sees half a voice. Leftovers of a process that died mid-write are cleaned up by the
next write. This module does no model or audio-quality work: the caller passes checked
samples and a callable that writes the prompt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import yaml

from sisyphus.errors import VoiceError

log = logging.getLogger(__name__)

VOICE_FILE = "voice.yaml"
REFERENCE_FILE = "reference.wav"
PROMPT_FILE = "prompt.pt"
REFERENCE_RATE_HZ = 24000
FORMAT_VERSION = 1
NAME_MAX_CHARS = 64
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_HIDDEN_PREFIXES = (".tmp-", ".old-", ".del-")

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
    # Name of the Base model the stored prompt was computed with; "" for presets.
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
    def reference_path(self) -> Path | None:
        return None if self.path is None else self.path / REFERENCE_FILE


PromptWriter = Callable[[Path], str]
"""Writes the clone prompt to the given file and returns the Base model's name."""


def validate_name(name: str, preset_speakers: Sequence[str] = ()) -> str:
    """A voice name becomes a folder name and a `--voice` value: keep it plain and unique."""
    if not name or len(name) > NAME_MAX_CHARS or not _NAME_RE.match(name):
        raise VoiceError(
            f"invalid voice name {name!r}",
            f"use 1-{NAME_MAX_CHARS} letters, digits, '_' or '-', starting with a letter or digit",
        )
    presets = {p.casefold(): p for p in preset_speakers}
    if name.casefold() in presets:
        raise VoiceError(
            f"voice name {name!r} is taken by the preset speaker {presets[name.casefold()]!r}",
            "choose another name",
        )
    return name


class VoiceLibrary:
    """Cloned voices in `folder` and the CustomVoice model's preset speakers."""

    def __init__(
        self,
        folder: Path,
        preset_speakers: Sequence[str],
        preset_languages: dict[str, str] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.preset_speakers = list(preset_speakers)
        self._preset_languages = dict(preset_languages or {})

    # ---- reading -------------------------------------------------------------------------

    def presets(self) -> list[VoiceInfo]:
        return [self._preset_info(s) for s in self.preset_speakers]

    def list(self) -> tuple[list[VoiceInfo], list[str]]:
        """Cloned voices then presets, and one problem line per unreadable voice folder."""
        voices: list[VoiceInfo] = []
        problems: list[str] = []
        preset_keys = {p.casefold() for p in self.preset_speakers}
        for entry in self._voice_dirs():
            try:
                info = _read_voice(entry)
                if info.name.casefold() in preset_keys:
                    raise VoiceError(f"name clashes with the preset speaker {info.name!r}")
            except VoiceError as exc:
                problems.append(f"{entry}: {exc.message}; delete the folder or clone it again")
                continue
            voices.append(info)
        return voices + self.presets(), problems

    def names(self) -> list[str]:
        voices, _ = self.list()
        return [v.name for v in voices]

    def get(self, name: str) -> VoiceInfo:
        """A cloned voice by its exact name, else a preset speaker (any case)."""
        entry = self.folder / name
        if _NAME_RE.match(name or "") and entry.is_dir():
            if name.casefold() not in {p.casefold() for p in self.preset_speakers}:
                try:
                    return _read_voice(entry)
                except VoiceError as exc:
                    raise VoiceError(
                        f"voice {name!r} is damaged: {exc.message}",
                        f"delete it with `sisyphus voices delete {name}` and clone it again",
                    ) from exc
        for speaker in self.preset_speakers:
            if speaker.casefold() == (name or "").casefold():
                return self._preset_info(speaker)
        raise VoiceError(f"unknown voice {name!r}", _valid_names_hint(self.names()))

    # ---- writing -------------------------------------------------------------------------

    def add(
        self,
        name: str,
        reference_24k: np.ndarray,
        transcript: str | None,
        language: str,
        prompt_writer: PromptWriter,
        force: bool = False,
        *,
        source_sha256: str = "",
    ) -> VoiceInfo:
        """Store a new voice atomically; with `force`, replace one of the same name."""
        validate_name(name, self.preset_speakers)
        samples = np.asarray(reference_24k, dtype=np.float32)
        if samples.ndim != 1 or samples.size == 0:
            raise VoiceError(f"reference audio for {name!r} must be non-empty mono samples")
        final = self.folder / name
        self._check_free(name, force)
        created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clean_leftovers()
        tmp = self._hidden(".tmp-", name)
        try:
            tmp.mkdir()
            sf.write(tmp / REFERENCE_FILE, samples, REFERENCE_RATE_HZ, subtype="FLOAT")
            model = prompt_writer(tmp / PROMPT_FILE)
            if not (tmp / PROMPT_FILE).is_file():
                raise VoiceError(f"the clone prompt for {name!r} was not written", "this is a bug")
            record = {
                "format_version": FORMAT_VERSION,
                "name": name,
                "kind": "cloned",
                "language": language,
                "transcript": transcript or None,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "audio_seconds": round(samples.size / REFERENCE_RATE_HZ, 3),
                "source_sha256": source_sha256 or hashlib.sha256(samples.tobytes()).hexdigest(),
                "model": str(model),
            }
            _write_yaml(tmp / VOICE_FILE, record)
            self._commit(tmp, final, replace=force)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created_folder and self.folder.is_dir() and not any(self.folder.iterdir()):
                self.folder.rmdir()
            raise
        log.info("stored voice %s in %s", name, final)
        return _read_voice(final)

    def replace_prompt(self, name: str, prompt_writer: PromptWriter) -> VoiceInfo:
        """Recompute a stored prompt (e.g. for another Base model), as atomically as `add`."""
        info = self.get(name)
        if info.path is None:
            raise VoiceError(f"{name!r} is a preset speaker and has no clone prompt")
        self._clean_leftovers()
        tmp = self._hidden(".tmp-", name)
        try:
            shutil.copytree(info.path, tmp)
            (tmp / PROMPT_FILE).unlink(missing_ok=True)
            model = prompt_writer(tmp / PROMPT_FILE)
            record = _read_yaml(tmp / VOICE_FILE)
            record["model"] = str(model)
            _write_yaml(tmp / VOICE_FILE, record)
            self._commit(tmp, info.path, replace=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return _read_voice(info.path)

    def delete(self, name: str) -> None:
        """Remove a cloned voice (a corrupt folder too); preset speakers cannot be deleted."""
        if name.casefold() in {p.casefold() for p in self.preset_speakers}:
            raise VoiceError(
                f"{name!r} is a preset speaker of the CustomVoice model and cannot be deleted",
                "only cloned voices can be deleted",
            )
        entry = self.folder / name
        if not _NAME_RE.match(name or "") or not entry.is_dir():
            raise VoiceError(f"unknown voice {name!r}", _valid_names_hint(self.names()))
        self._clean_leftovers()
        trash = self._hidden(".del-", name)
        os.rename(entry, trash)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("deleted voice %s", name)

    # ---- internals -----------------------------------------------------------------------

    def _preset_info(self, speaker: str) -> VoiceInfo:
        return VoiceInfo(
            name=speaker,
            kind="preset",
            language=self._preset_languages.get(speaker, "auto"),
            transcript=None,
            created="",
            audio_seconds=0.0,
            source_sha256="",
            model="",
            needs="tts_custom",
            path=None,
        )

    def _voice_dirs(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(
            (p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.name.casefold(),
        )

    def _check_free(self, name: str, force: bool) -> None:
        if force:
            return
        taken = [p.name for p in self._voice_dirs() if p.name.casefold() == name.casefold()]
        if taken:
            raise VoiceError(
                f"a voice named {taken[0]!r} already exists",
                "pass --force to replace it, or choose another name",
            )

    def _hidden(self, prefix: str, name: str) -> Path:
        return self.folder / f"{prefix}{name}-{os.getpid()}-{secrets.token_hex(4)}"

    def _commit(self, tmp: Path, final: Path, *, replace: bool) -> None:
        """Rename `tmp` to `final`; an existing `final` is swapped out and back on failure."""
        if not final.exists():
            os.rename(tmp, final)
            return
        if not replace:
            raise VoiceError(f"a voice named {final.name!r} already exists", "pass --force to replace it")
        old = self._hidden(".old-", final.name)
        os.rename(final, old)
        try:
            os.rename(tmp, final)
        except BaseException:
            os.rename(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def _clean_leftovers(self) -> None:
        """Undo what a process that died mid-write left behind (only dead processes' files)."""
        if not self.folder.is_dir():
            return
        for entry in self.folder.iterdir():
            parsed = _parse_hidden(entry.name)
            if parsed is None or _pid_alive(parsed[2]):
                continue
            prefix, name, _ = parsed
            final = self.folder / name
            if prefix == ".old-" and not final.exists():
                log.warning("restoring voice %s left aside by an interrupted write", name)
                os.rename(entry, final)
            else:
                shutil.rmtree(entry, ignore_errors=True)


def _parse_hidden(entry: str) -> tuple[str, str, int] | None:
    for prefix in _HIDDEN_PREFIXES:
        if entry.startswith(prefix):
            parts = entry[len(prefix):].rsplit("-", 2)
            if len(parts) == 3 and parts[1].isdigit() and _NAME_RE.match(parts[0]):
                return prefix, parts[0], int(parts[1])
    return None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _valid_names_hint(names: Sequence[str]) -> str:
    if not names:
        return "no voices are available; clone one with `sisyphus voices clone`"
    return "valid voices: " + ", ".join(names)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VoiceError(f"{path.name} is missing") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise VoiceError(f"{path.name} cannot be read ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise VoiceError(f"{path.name} does not hold a mapping")
    return data


def _write_yaml(path: Path, record: dict[str, Any]) -> None:
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


def _read_voice(folder: Path) -> VoiceInfo:
    """Parse and check one voice folder; anything wrong is a VoiceError naming the problem."""
    record = _read_yaml(folder / VOICE_FILE)
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
    for needed in (REFERENCE_FILE, PROMPT_FILE):
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
