"""Random-weight checkpoints for `sisyphus bench --random-weights`, written once and reused.

Real-size random models cost the real compute and memory, so a machine without the
downloads can still measure speed. Writing them takes a while (seconds for "reduced",
minutes and several GB for "full"), so they are cached under
~/.cache/sisyphus/bench/<size>/ (or --cache DIR/<size>/). A folder counts as complete
only if it carries a stamp naming its size and format: each model is written into a
hidden temporary folder that is renamed into place after the stamp is in it, so an
interrupted write (Ctrl-C, a kill, a full disk) never leaves a folder that a later run
would take for finished.

Sizes: "full" (official configs), "reduced" (official widths, fewer layers; what the
CPU runs), and "tiny" (test widths, for the test suite).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from sisyphus.errors import ModelError

log = logging.getLogger(__name__)

SIZES = ("tiny", "reduced", "full")
KEYS = ("asr", "tts_custom", "tts_base")
STAMP = ".sisyphus-bench.json"
FORMAT = 1  # bump when a writer changes, so caches written by older code are rewritten
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")


def default_cache() -> Path:
    """~/.cache/sisyphus/bench (XDG_CACHE_HOME is honoured, read at call time)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return root / "sisyphus" / "bench"


def prepare_random_models(cache: Path, size: str, say: Callable[[str], None] = lambda text: None) -> dict[str, Path]:
    """The folders <cache>/<size>/{asr,tts_custom,tts_base}: random GLM-ASR, 1.7B CustomVoice, 1.7B Base."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    folders: dict[str, Path] = {}
    for key in KEYS:
        target = Path(cache) / size / key
        folders[key] = ensure_folder(target, lambda folder, key=key: _write(key, size, folder), _stamp(key, size), say)
    return folders


def missing_models(cache: Path, size: str) -> list[str]:
    """The keys whose folders are not complete yet (what `prepare_random_models` would write)."""
    return [key for key in KEYS if not is_complete(Path(cache) / size / key, _stamp(key, size))]


def prepare_in_child(cache: Path, size: str) -> dict[str, Path]:
    """`prepare_random_models` in a separate process, then the folders.

    Writing "full" builds a float32 GLM-ASR of about 9 GB on the CPU first; in a child
    process that memory goes back to the system with it, and the bench's own peak-RSS
    figure keeps describing the models at work, not their writing.
    """
    if missing_models(cache, size):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(Path(cache), size, send), name="sisyphus-bench-write")
        child.start()
        send.close()
        try:
            child.join()
        except KeyboardInterrupt:
            child.terminate()  # its half-written folder stays hidden and is removed by the next run
            child.join()
            raise
        message, hint = _received(receive)
        if child.exitcode != 0 or message:
            raise ModelError(message or f"writing random {size} weights failed (exit code {child.exitcode})",
                             hint or "run again; the messages above say what went wrong")
    return prepare_random_models(cache, size)


def _received(receive: Any) -> tuple[str, str]:
    """The child's error message and hint, or empty ones (poll is also true at end of file)."""
    try:
        return tuple(receive.recv()) if receive.poll() else ("", "")  # type: ignore[return-value]
    except EOFError:
        return "", ""


def _child(cache: Path, size: str, send: Any) -> None:
    from sisyphus.errors import SisyphusError

    try:
        prepare_random_models(cache, size, log.info)
    except SisyphusError as exc:
        send.send((exc.message, exc.hint))
    except KeyboardInterrupt:  # the parent saw Ctrl-C too and says so
        raise SystemExit(130) from None


def _stamp(key: str, size: str) -> dict[str, Any]:
    return {"format": FORMAT, "key": key, "size": size}


def ensure_folder(target: Path, write: Callable[[Path], Any], stamp: dict[str, Any],
                  say: Callable[[str], None] = lambda text: None) -> Path:
    """`target` if it is complete with this stamp; otherwise write it via a temporary folder.

    `write(folder)` fills a fresh folder. Whatever stops it (an exception, Ctrl-C) removes
    the temporary folder; a process killed outright leaves it behind under a hidden name
    that is never read and is removed by the next run.
    """
    if is_complete(target, stamp):
        return target
    temp = target.parent / f".{target.name}.partial-{os.getpid()}"
    say(f"writing random {stamp.get('key', target.name)} ({stamp.get('size', '?')}) into {target}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(target)
        shutil.rmtree(temp, ignore_errors=True)
        write(temp)
        (temp / STAMP).write_text(json.dumps(stamp, sort_keys=True), encoding="utf-8")
        if is_complete(target, stamp):  # another run finished first (and may be using it)
            shutil.rmtree(temp, ignore_errors=True)
            return target
        if target.exists():
            shutil.rmtree(target)  # incomplete or from another format: replaced, never patched
        try:
            os.replace(temp, target)  # onto a folder that is gone: allowed on Windows too
        except OSError:
            if not is_complete(target, stamp):  # lost a race to a run that finished: use its copy
                raise
            shutil.rmtree(temp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        raise ModelError(f"cannot write random weights into {target}: {exc.strerror or exc}",
                         "pass --cache DIR with a writable folder on a disk with room") from exc
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return target


def is_complete(folder: Path, stamp: dict[str, Any]) -> bool:
    """Only a folder whose stamp (written last, before the rename) matches counts."""
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        return False


def _remove_stale_partials(target: Path) -> None:
    """Temporary folders of this target left by processes that no longer run."""
    for path in target.parent.glob(f".{target.name}.partial-*"):
        match = _PARTIAL.match(path.name)
        if match and match["name"] == target.name and not psutil.pid_exists(int(match["pid"])):
            log.info("removing %s, left by an interrupted write", path)
            shutil.rmtree(path, ignore_errors=True)


def _write(key: str, size: str, folder: Path) -> None:
    if key == "asr":
        from sisyphus.asr.synthetic import write_random_glmasr

        write_random_glmasr(folder, size)
        return
    from sisyphus.tts.qwen3.synthetic import write_random_tts

    kind = "custom_voice" if key == "tts_custom" else "base"
    write_random_tts(folder, kind, "1b7", scale=size, seed=0 if kind == "custom_voice" else 1)
