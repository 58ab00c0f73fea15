"""The voice library on disk: one folder per cloned voice, plus the model's preset speakers.

Layout (see voices/README.md)::

    <library>/<name>/voice.yaml           name, kind, language, transcript, created, source
                                          hash, the Base model the prompt was computed with
    <library>/<name>/reference.wav        the checked, trimmed 24 kHz mono reference
    <library>/<name>/prompt.safetensors   the stored clone prompt (ClonePrompt.save)

Every write builds a hidden sibling folder (``.tmp-<name>-<pid>-<hex>``) and renames it
into place, so a crash or Ctrl-C leaves the library as it was and a concurrent `list`
never sees half a voice. Leftovers of a process that died mid-write are cleaned up by the
next write. This module does no model or audio-quality work: the caller passes checked
samples and a callable that writes the prompt.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from sisyphus.errors import VoiceError
from sisyphus.voices.voicefile import (
    FORMAT_VERSION,
    NAME_MAX_CHARS,
    NAME_RE,
    PROMPT_FILE,
    REFERENCE_FILE,
    REFERENCE_RATE_HZ,
    VOICE_FILE,
    Kind,
    Needs,
    VoiceInfo,
    read_voice,
    read_yaml,
    write_yaml,
)

__all__ = ["PROMPT_FILE", "REFERENCE_RATE_HZ", "Kind", "Needs", "VoiceInfo", "VoiceLibrary", "validate_name"]

log = logging.getLogger(__name__)

_HIDDEN_PREFIXES = (".tmp-", ".old-", ".del-")
# Device names Windows reserves in every folder, with or without an extension. Names
# are refused on every platform; NAME_RE already keeps out dots, spaces and <>:"/\\|?*.
WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"{port}{n}" for port in ("com", "lpt") for n in [*"0123456789", "\u00b9", "\u00b2", "\u00b3"]]
)


PromptWriter = Callable[[Path], str]
"""Writes the clone prompt to the given file and returns the Base model's name."""


def validate_name(name: str, preset_speakers: Sequence[str] = ()) -> str:
    """A voice name becomes a folder name and a `--voice` value: keep it plain and unique."""
    if not name or len(name) > NAME_MAX_CHARS or not NAME_RE.match(name):
        raise VoiceError(
            f"invalid voice name {name!r}",
            f"use 1-{NAME_MAX_CHARS} letters, digits, '_' or '-', starting with a letter or digit",
        )
    if name.casefold() in WINDOWS_RESERVED:
        raise VoiceError(
            f"voice name {name!r} is a reserved device name on Windows and cannot name a folder there",
            "choose another name (voice libraries move between machines)",
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
        reserved_names: Sequence[str] = (),
    ) -> None:
        self.folder = Path(folder)
        self.preset_speakers = list(preset_speakers)
        self._preset_languages = dict(preset_languages or {})
        # Names new voices may not take although they are not listed (see VoiceRouter).
        self.reserved_names = list(reserved_names)

    # ---- reading -------------------------------------------------------------------------

    def presets(self) -> list[VoiceInfo]:
        return [self.preset_info(s) for s in self.preset_speakers]

    def list(self) -> tuple[list[VoiceInfo], list[str]]:
        """Cloned voices then presets, and one problem line per unreadable voice folder."""
        voices: list[VoiceInfo] = []
        problems: list[str] = []
        preset_keys = {p.casefold() for p in self.preset_speakers}
        for entry in self._voice_dirs():
            try:
                info = read_voice(entry)
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
        if NAME_RE.match(name or "") and entry.is_dir():
            if name.casefold() not in {p.casefold() for p in self.preset_speakers}:
                try:
                    return read_voice(entry)
                except VoiceError as exc:
                    raise VoiceError(
                        f"voice {name!r} is damaged: {exc.message}",
                        f"delete it with `sisyphus voices delete {name}` and clone it again",
                    ) from exc
        for speaker in self.preset_speakers:
            if speaker.casefold() == (name or "").casefold():
                return self.preset_info(speaker)
        raise VoiceError(f"unknown voice {name!r}", _valid_names_hint(self.names()))

    # ---- writing -------------------------------------------------------------------------

    def add(
        self,
        name: str,
        reference_24k: np.ndarray,
        transcript: str | None,
        language: str,
        prompt_writer: PromptWriter | None,
        force: bool = False,
        *,
        source_sha256: str = "",
    ) -> VoiceInfo:
        """Store a new voice atomically; with `force`, replace one of the same name.

        Without a `prompt_writer` (cloned with a remote Base server) only the reference and
        its transcript are stored; a local Base model computes the prompt on first use.
        """
        self.check_new_name(name, force)
        samples = np.asarray(reference_24k, dtype=np.float32)
        if samples.ndim != 1 or samples.size == 0:
            raise VoiceError(f"reference audio for {name!r} must be non-empty mono samples")
        final = self.folder / name
        created_folder = not self.folder.exists()
        tmp = self._hidden(".tmp-", name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._clean_leftovers()
            tmp.mkdir()
            (tmp / REFERENCE_FILE).write_bytes(_wav_bytes(samples))
            model = prompt_writer(tmp / PROMPT_FILE) if prompt_writer is not None else ""
            if prompt_writer is not None and not (tmp / PROMPT_FILE).is_file():
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
            write_yaml(tmp / VOICE_FILE, record)
            self._commit(tmp, final, replace=force)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if created_folder and self.folder.is_dir() and not any(self.folder.iterdir()):
                self.folder.rmdir()
            if isinstance(exc, OSError):
                raise VoiceError(
                    f"cannot store voice {name!r} in {self.folder}: {exc.strerror or exc}",
                    "check free disk space and write permission",
                ) from exc
            raise
        log.info("stored voice %s in %s", name, final)
        return read_voice(final)

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
            record = read_yaml(tmp / VOICE_FILE)
            record["model"] = str(model)
            write_yaml(tmp / VOICE_FILE, record)
            self._commit(tmp, info.path, replace=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return read_voice(info.path)

    def check_new_name(self, name: str, force: bool = False) -> None:
        """What `add` refuses about a name, checked before any audio or model work."""
        validate_name(name, [*self.preset_speakers, *self.reserved_names])
        self._check_free(name, force)

    def cloned_folder(self, name: str) -> Path:
        """The folder `delete` would remove (a damaged voice's too); presets are refused."""
        presets = {p.casefold(): p for p in self.preset_speakers}
        if name.casefold() in presets:
            raise VoiceError(
                f"{presets[name.casefold()]!r} is a preset speaker of the CustomVoice model and cannot be deleted",
                "only cloned voices can be deleted",
            )
        entry = self.folder / name
        if not NAME_RE.match(name or "") or not entry.is_dir():
            raise VoiceError(f"unknown voice {name!r}", _valid_names_hint(self.names()))
        return entry

    def delete(self, name: str) -> None:
        """Remove a cloned voice (a corrupt folder too); preset speakers cannot be deleted."""
        entry = self.cloned_folder(name)
        self._clean_leftovers()
        trash = self._hidden(".del-", name)
        os.rename(entry, trash)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("deleted voice %s", name)

    def preset_info(self, speaker: str) -> VoiceInfo:
        """A preset speaker as a VoiceInfo (its name is not checked against the model)."""
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

    # ---- internals -----------------------------------------------------------------------

    def _voice_dirs(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(
            (p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.name.casefold(),
        )

    def _check_free(self, name: str, force: bool) -> None:
        """Names are unique regardless of case; --force replaces only the exact name."""
        taken = [p.name for p in self._voice_dirs() if p.name.casefold() == name.casefold()]
        if taken and taken[0] != name:
            raise VoiceError(
                f"a voice named {taken[0]!r} already exists",
                "use that exact name to replace it (with --force), or choose another name",
            )
        if taken and not force:
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


def _wav_bytes(samples: np.ndarray) -> bytes:
    """The reference as a float WAV in memory, so a failed write is a plain OSError.

    soundfile is imported here, not at the top: the CLI imports this module for every
    command, `--help` included, and must start where soundfile is not installed.
    """
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, REFERENCE_RATE_HZ, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _parse_hidden(entry: str) -> tuple[str, str, int] | None:
    for prefix in _HIDDEN_PREFIXES:
        if entry.startswith(prefix):
            parts = entry[len(prefix):].rsplit("-", 2)
            if len(parts) == 3 and parts[1].isdigit() and NAME_RE.match(parts[0]):
                return prefix, parts[0], int(parts[1])
    return None


def _pid_alive(pid: int) -> bool:
    """Whether the writer that owns a hidden folder may still be running (then keep it)."""
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill(pid, 0) would kill it
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
