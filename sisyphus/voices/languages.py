"""Which reply languages the TTS models speak, known before any model (or torch) loads.

`voice.language` is passed to TTS on every phrase; an unknown one used to be refused
there, phrase after phrase, in a session that otherwise looked fine. The list comes from
each model's config.json (`talker_config.codec_language_id`) when the model is on disk,
else from the official configs packaged with Sisyphus (all official Qwen3-TTS 12 Hz
models share it). The rule is the runtime's (tts/qwen3/layout.py): "auto", or a
language that is not a dialect (dialects come with their preset speakers), any case.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from sisyphus.config import Config
from sisyphus.errors import ConfigError, ModelError
from sisyphus.hub import model_folder

OFFICIAL_DIR = Path(__file__).resolve().parents[1] / "tts" / "qwen3" / "official"


def languages_in(config_json: Path) -> list[str] | None:
    """"auto" and the model's languages; None when the file cannot tell."""
    try:
        raw = json.loads(config_json.read_text(encoding="utf-8"))
        ids = raw["talker_config"]["codec_language_id"]
        names = [str(name).lower() for name in ids]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ["auto", *(name for name in names if "dialect" not in name)]


@functools.lru_cache(maxsize=1)
def packaged_languages() -> tuple[str, ...]:
    """The languages every packaged official model speaks."""
    common: list[str] | None = None
    for path in sorted(OFFICIAL_DIR.glob("*/config.json")):
        found = languages_in(path) or []
        common = found if common is None else [name for name in common if name in found]
    return tuple(common or ["auto"])


def check_language(config: Config, keys: tuple[str, ...] = ("tts_custom", "tts_base")) -> str:
    """The language in the spelling TTS uses, or a ConfigError listing the valid ones.

    Checked against each of `keys`'s models that is on disk; with none on disk, against
    the packaged official list (a missing model is reported by whoever needs it).
    """
    language = config.voice.language.strip().lower()
    if language == "auto":
        return language
    checked = False
    for key in keys:
        try:
            folder = model_folder(config, key)
        except ModelError:
            continue
        valid = languages_in(folder / "config.json")
        if valid is None:
            continue
        checked = True
        if language not in valid:
            raise _unknown(config, valid, f"models.{key} ({getattr(config.models, key)})")
    if not checked and language not in packaged_languages():
        raise _unknown(config, list(packaged_languages()), "Qwen3-TTS")
    return language


def _unknown(config: Config, valid: list[str], model: str) -> ConfigError:
    from sisyphus.yamlread import preview

    return ConfigError(
        f"voice.language: {preview(config.voice.language)} is not a language of {model}",
        "use --language (or voice.language, SISYPHUS_LANGUAGE) with one of: " + ", ".join(valid),
    )
