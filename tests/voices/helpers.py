"""Shared helpers of the voice tests: run the CLI, look at the library on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner, Result

from sisyphus.cli import app
from sisyphus.voices.library import VoiceLibrary

PRESETS = ["serena", "vivian", "uncle_fu", "ryan", "aiden", "ono_anna", "sohee", "eric", "dylan"]


def run(config_file: Path, *args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(app, ["voices", *args, "--config", str(config_file)], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def library_of(config_file: Path) -> VoiceLibrary:
    return VoiceLibrary(config_file.parent / "my-voices", PRESETS)


def stored(config_file: Path, name: str, seconds: float = 6.0, transcript: str | None = "Hi.") -> None:
    """Put a voice in the library without a model (list and delete never read prompts)."""
    samples = (0.1 * np.random.default_rng(len(name)).standard_normal(int(seconds * 24000))).astype(np.float32)

    def write(path: Path) -> str:
        path.write_bytes(b"not read by list or delete")
        return "tiny-base"

    library_of(config_file).add(name, samples, transcript, "english", write)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders): equal means unchanged."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def edit_config(config_file: Path, dotted: str, value: object) -> None:
    """Set one key of the test's models.yaml, e.g. edit_config(path, "voice.default", "alice")."""
    data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    config_file.write_text(yaml.safe_dump(data), encoding="utf-8")


def read_24k(path: Path) -> np.ndarray:
    """A file as 24 kHz mono float32, decoded as `voices clone` decodes it."""
    from sisyphus.audio.source import load_audio

    return load_audio(path, 24000)
