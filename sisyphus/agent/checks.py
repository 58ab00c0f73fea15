"""Cheap checks `talk` runs before any model loads, for what would otherwise fail later.

A transcript folder that cannot be written, or a hosted LLM endpoint without a key, used
to show up after a multi-second model load (or on every turn). These checks cost
milliseconds; each failure is one line that names the setting to change.
"""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from sisyphus.config import Config
from sisyphus.errors import SisyphusError

LOCAL_SUFFIXES = (".local", ".localhost", ".lan", ".internal", ".home.arpa")


def check_transcript_dir(given: Path | None) -> Path:
    """The folder transcripts go to, created and proven writable; else one line saying
    which setting chose it (`--transcript-dir` / SISYPHUS_TRANSCRIPT_DIR, or the data
    folder) and what to set."""
    from sisyphus.transcript import default_transcript_dir

    folder = Path(given).expanduser() if given is not None else default_transcript_dir()
    if given is not None:
        fix = "pass --transcript-dir (or set SISYPHUS_TRANSCRIPT_DIR) with a writable folder"
    else:
        fix = "set SISYPHUS_TRANSCRIPT_DIR (or SISYPHUS_DATA_DIR) to a writable folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SisyphusError(f"cannot write the session transcript in {folder}: {exc.strerror or exc}", fix) from exc
    return folder


def is_local_endpoint(base_url: str) -> bool:
    """Loopback, private-network and .local hosts: servers there rarely want a key."""
    host = (urlsplit(base_url).hostname or "").lower()
    single_label = "." not in host and ":" not in host  # "ollama" in a compose network
    if host == "localhost" or host.endswith(LOCAL_SUFFIXES) or single_label:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def api_key_warning(config: Config) -> str | None:
    """One line for the start of a session: a hosted endpoint and no OPENAI_API_KEY."""
    if config.llm.api_key or is_local_endpoint(config.llm.base_url):
        return None
    host = urlsplit(config.llm.base_url).hostname
    return (
        f"OPENAI_API_KEY is not set: {host} will most likely refuse every request "
        "(set OPENAI_API_KEY, or point --llm-url at a local server)"
    )

