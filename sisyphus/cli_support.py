"""What every command shares: the --debug switch, logging, and one-line errors.

Users never see a traceback for their own mistakes: a SisyphusError becomes
`error: <what was wrong>. <what to do>` on stderr and a non-zero exit; a config error
lists one bullet per field. `--debug` (or SISYPHUS_DEBUG=1) shows tracebacks and
debug logs.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from sisyphus.config import Config, default_config_path, load_config
from sisyphus.errors import ConfigError, SisyphusError
from sisyphus.safetext import SafeLogRecords, safe_line

F = TypeVar("F", bound=Callable[..., Any])

_debug = False


def set_debug(enabled: bool) -> None:
    """--debug: Sisyphus's own loggers at DEBUG; every other logger stays at INFO (numba
    alone wrote over half of a bench run's lines) unless named in SISYPHUS_DEBUG_LOGGERS."""
    global _debug
    _debug = enabled
    level = logging.INFO if enabled else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(SafeLogRecords())
    for noisy in ("httpx", "httpcore", "openai", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(level, logging.INFO))
    logging.getLogger("sisyphus").setLevel(logging.DEBUG if enabled else logging.NOTSET)
    asked = os.environ.get("SISYPHUS_DEBUG_LOGGERS", "") if enabled else ""
    for name in filter(None, (part.strip() for part in asked.split(","))):
        logging.getLogger(name).setLevel(logging.DEBUG)


def debug_enabled() -> bool:
    return _debug or os.environ.get("SISYPHUS_DEBUG", "") not in ("", "0")


def report_error(exc: SisyphusError) -> int:
    """Print the error as the user should see it; return the exit code."""
    if debug_enabled():
        traceback.print_exception(exc)
    if isinstance(exc, ConfigError) and exc.message.startswith("invalid configuration: "):
        fields = exc.message.removeprefix("invalid configuration: ").split("; ")
        print("error: invalid configuration" + (f" ({safe_line(exc.hint)})" if exc.hint else ""), file=sys.stderr)
        for field in fields:
            print(f"  • {safe_line(field)}", file=sys.stderr)
    else:
        print(f"error: {safe_line(exc.one_line())}", file=sys.stderr)
    return exc.exit_code


def handle_errors(func: F) -> F:
    """Turn SisyphusError (and Ctrl-C) into a one-line message and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SisyphusError as exc:
            raise typer.Exit(report_error(exc)) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def read_config(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """The config for a command: --config, else SISYPHUS_CONFIG, else ./models.yaml."""
    return load_config(path or default_config_path(), overrides=overrides or {})
