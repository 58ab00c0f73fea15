"""Model weights: downloading them on request, and finding them without the network.

`pull` is the only place Sisyphus downloads anything (`sisyphus models pull`);
`locate` is what `talk` uses, and it never touches the network, so a missing model is an
error naming the command that fixes it rather than a surprise multi-GB download.
A model is a Hub repo id or a local folder; both must hold config.json and safetensors
weights (every shard an index names). HF_ENDPOINT, HF_HOME and HF_HUB_CACHE are read
when called, not when huggingface_hub was imported, so the CLI and tests can set them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING

from sisyphus.errors import ModelError

if TYPE_CHECKING:
    from sisyphus.config import Config

log = logging.getLogger(__name__)

# `sisyphus models pull <key>` → the config field holding that model's repo or folder.
MODEL_KEYS = {"asr": "models.asr", "tts-base": "models.tts_base", "tts-custom": "models.tts_custom"}

_DEFAULT_ENDPOINT = "https://huggingface.co"


def pull(repo_or_folder: str, cache_dir: str | None, progress: bool = True) -> Path:
    """Download a repo snapshot (resuming partial files), or validate a local folder."""
    local = _local_folder(repo_or_folder)
    if local is not None:
        return check_model_folder(local, repo_or_folder)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    from huggingface_hub import constants as hf_constants

    if hf_constants.HF_HUB_OFFLINE:  # read by huggingface_hub when it was imported
        raise ModelError(f"cannot download {repo_or_folder}: HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE and pull again")
    endpoint = os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT
    cache = _cache_dir(cache_dir)
    log.info("pulling %s from %s into %s", repo_or_folder, endpoint, cache or "the Hugging Face cache")
    try:
        with _progress_bars(progress):
            folder = snapshot_download(repo_or_folder, cache_dir=cache, endpoint=endpoint)
    except GatedRepoError as exc:
        raise ModelError(
            f"{repo_or_folder} is gated on {endpoint}",
            "accept its terms on the model page, then set HF_TOKEN (or run `hf auth login`)",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelError(
            f"{repo_or_folder} was not found on {endpoint}",
            "check the repo id (or that the local folder exists); private repos need HF_TOKEN",
        ) from exc
    except LocalEntryNotFoundError as exc:
        raise ModelError(
            f"cannot download {repo_or_folder}: {endpoint} is unreachable",
            "check the network or HF_ENDPOINT (a mirror works too), unset HF_HUB_OFFLINE, "
            "or download the folder elsewhere and point models.yaml at it",
        ) from exc
    except HfHubHTTPError as exc:
        raise ModelError(f"downloading {repo_or_folder} failed: {_first_line(exc)}", "run the pull again; it resumes") from exc
    except OSError as exc:
        raise ModelError(
            f"cannot store {repo_or_folder}: {exc.strerror or exc}",
            "free disk space, or set HF_HOME to a folder on a bigger disk",
        ) from exc
    except Exception as exc:  # httpx transport errors and the like: still a network problem
        if type(exc).__module__.split(".")[0] not in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
            raise
        raise ModelError(
            f"cannot download {repo_or_folder}: {_first_line(exc)}", "check the network and run the pull again"
        ) from exc
    return check_model_folder(Path(folder), repo_or_folder)


def locate(repo_or_folder: str, cache_dir: str | None, key: str | None = None) -> Path:
    """The folder of a model that is already here; never downloads.

    `key` (asr, tts-base, tts-custom) makes the hint name the exact pull command.
    """
    local = _local_folder(repo_or_folder)
    if local is not None:
        return check_model_folder(local, repo_or_folder, key)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    command = f"sisyphus models pull {key or 'all'}"
    try:
        folder = snapshot_download(repo_or_folder, cache_dir=_cache_dir(cache_dir), local_files_only=True)
    except LocalEntryNotFoundError as exc:
        raise ModelError(f"model {repo_or_folder} is not downloaded", f"run `{command}`") from exc
    except HFValidationError as exc:
        raise ModelError(
            f"model {repo_or_folder!r} is neither an existing folder nor a Hub repo id",
            "give a folder that exists or an id like org/name",
        ) from exc
    return check_model_folder(Path(folder), repo_or_folder, key)


def check_model_folder(folder: Path, name: str, key: str | None = None) -> Path:
    """A usable model folder has config.json and all of its safetensors weights."""
    again = f"run `sisyphus models pull {key}` again" if key else "download the model again"
    if not (folder / "config.json").is_file():
        raise ModelError(f"model folder {folder} has no config.json", f"is {name} a model folder? {again}")
    missing = _missing_shards(folder)
    if missing:
        raise ModelError(f"model folder {folder} lacks weight shards: {', '.join(missing)}", again)
    if not any(p.is_file() for p in folder.glob("*.safetensors")):
        raise ModelError(f"model folder {folder} holds no *.safetensors weights", again)
    return folder


def _missing_shards(folder: Path) -> list[str]:
    missing: list[str] = []
    for index in folder.glob("*.safetensors.index.json"):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        except (OSError, ValueError) as exc:
            raise ModelError(f"weight index {index} is unreadable: {exc}", "download the model again") from exc
        for shard in sorted(set(weight_map.values())):
            if not (folder / shard).is_file():  # is_file follows the cache's symlinks
                missing.append(shard)
    return missing


def _local_folder(repo_or_folder: str) -> Path | None:
    """A path on disk, or None for something that must be a Hub repo id."""
    path = Path(repo_or_folder).expanduser()
    if path.is_dir():
        return path
    # A Hub id is "org/name"; anything with a drive, a backslash or a leading ./ ~ / is a
    # path, on every platform (C:\models\asr in a config written on Windows, say).
    looks_like_path = (
        repo_or_folder.startswith(("/", "./", "../", "~", ".\\", "..\\", "\\"))
        or repo_or_folder.count("/") > 1
        or "\\" in repo_or_folder
        or bool(PureWindowsPath(repo_or_folder).drive)
    )
    if looks_like_path or path.exists():
        raise ModelError(f"model folder {path} does not exist", "fix the path in models.yaml (or the flag)")
    return None


def _cache_dir(cache_dir: str | None) -> str | None:
    """Explicit folder, else HF_HUB_CACHE / HF_HOME read now, else huggingface_hub's default."""
    if cache_dir:
        return str(Path(cache_dir).expanduser())
    if os.environ.get("HF_HUB_CACHE"):
        return str(Path(os.environ["HF_HUB_CACHE"]).expanduser())
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    return None


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if enabled == (not was_disabled):
        yield
        return
    (enable_progress_bars if enabled else disable_progress_bars)()
    try:
        yield
    finally:
        (disable_progress_bars if was_disabled else enable_progress_bars)()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def model_folder(config: "Config", key: str) -> Path:
    """The local folder of `config.models.<key>` ("asr", "tts_base", "tts_custom").

    A folder path is resolved against the config file; a Hub repo id must already be in
    the cache. Never downloads: a missing model is a ModelError naming `models pull`.
    """
    from sisyphus.config import resolve_path

    repo = getattr(config.models, key)
    local = resolve_path(config, repo)
    return locate(str(local) if local.exists() else repo, config.models.cache_dir, key.replace("_", "-"))
