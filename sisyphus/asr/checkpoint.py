"""Finding a model's files: a local folder, or a Hub repo already in the local cache.

Nothing is downloaded here: `talk` must never fetch weights implicitly, so a repo id that
is not in the cache is a ModelError that points at `sisyphus models pull`. A folder that
exists but lacks files is named together with what is missing, because a half-finished
download or a wrong path is the usual cause.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from sisyphus.errors import ModelError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


def resolve_model_folder(
    repo_or_folder: str,
    *,
    what: str,
    pull_hint: str,
    cache_dir: str | None = None,
) -> Path:
    """The folder holding the checkpoint; `what` names the model in messages ("ASR model")."""
    local = Path(repo_or_folder).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise ModelError(f"{what} path {local} is a file, not a folder", "point it at the checkpoint folder")
    if _looks_like_path(repo_or_folder):
        raise ModelError(f"{what} folder {local} does not exist", f"check the path, or {pull_hint}")
    return _cached_snapshot(repo_or_folder, what=what, pull_hint=pull_hint, cache_dir=cache_dir)


def _looks_like_path(text: str) -> bool:
    """A Hub id is `name` or `owner/name`; anything else can only be meant as a folder."""
    return text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.endswith("/") or "\\" in text


def _cached_snapshot(repo_id: str, *, what: str, pull_hint: str, cache_dir: str | None) -> Path:
    # Imported here: huggingface_hub reads HF_HOME/HF_HUB_OFFLINE when first imported.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        folder = snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir)
    except HFValidationError as exc:
        raise ModelError(f"{what} {repo_id!r} is neither a folder nor a valid Hub repo id", pull_hint) from exc
    except (OSError, ValueError) as exc:  # LocalEntryNotFoundError is an OSError
        log.debug("snapshot lookup for %s failed: %s", repo_id, exc)
        raise ModelError(f"{what} {repo_id} is not downloaded", pull_hint) from exc
    return Path(folder)


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint; missing ones raise ModelError naming them."""
    single = folder / WEIGHTS_FILE
    if single.is_file():
        return [single]
    index = folder / WEIGHTS_INDEX
    if not index.is_file():
        raise ModelError(
            f"model folder {folder} has no weights ({WEIGHTS_FILE} or {WEIGHTS_INDEX} is missing)",
            "download the model again or fix the path",
        )
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ModelError(f"{index} is not a valid safetensors index", "download the model again") from exc
    missing = [name for name in shards if not (folder / name).is_file()]
    if missing:
        raise ModelError(
            f"model folder {folder} is missing weight shards: {_short_list(missing)}",
            "the download is incomplete; pull the model again",
        )
    return [folder / name for name in shards]


def require_files(folder: Path, names: Sequence[str], *, what: str) -> None:
    """Raise one ModelError listing every required file the folder lacks."""
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ModelError(
            f"{what} folder {folder} is missing {_short_list(missing)}",
            "download the model again or fix the path",
        )


def read_config(folder: Path, *, what: str) -> dict:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{what} folder {folder} has no config.json", "download the model again or fix the path") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not valid JSON", "download the model again") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{path} does not hold a JSON object", "download the model again")
    return config


def _short_list(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
