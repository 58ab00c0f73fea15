"""Refusing an output path that would destroy what the session reads.

`talk --input a.wav --output a.wav` would truncate the recording when the speaker file
opens, before a block of it was read; the same happens through `./a.wav`, a symlink or a
hard link, and to the config file or a clone reference in the voice library. These checks
are cheap, so they run before any model loads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sisyphus.errors import ConfigError


def refuse_overwriting(output: Path | None, protected: Mapping[str, Path | None], *, flag: str = "--output") -> None:
    """Raise ConfigError if writing `output` would replace a protected file or write into
    a protected folder (`protected` maps a name for the user, e.g. "--input", to a path)."""
    if output is None:
        return
    for label, path in protected.items():
        if path is None:
            continue
        if _same_file(output, path):
            same = "" if _spelled_alike(output, path) else f" ({path})"
            raise ConfigError(
                f"{flag} {output} is the same file as {label}{same}: it would be overwritten",
                f"write to another file than {label}",
            )
        if path.is_dir() and _inside(output, path):
            raise ConfigError(
                f"{flag} {output} is inside {label} ({path})", f"write the file outside {path}"
            )


def _same_file(a: Path, b: Path) -> bool:
    """Same file by any path, symlink or hard link; False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _spelled_alike(a: Path, b: Path) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False
