"""HTTP to the remote ASR/TTS servers (vLLM, vLLM-Omni): endpoints, retries, one-line errors.

A remote engine (asr/remote.py, tts/remote.py) owns one `HttpClient` for its server. The
client retries only what failed before the first byte of an answer (connection refused,
a dropped connection, 429, 5xx), because audio already played cannot be taken back, and
turns every failure into one `RemoteError` that names the server and says what to do,
with the server's own message when it sent one.

This module knows nothing about audio or the request bodies; those are the engines'.
Nothing here is imported unless a remote server is configured.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sisyphus.errors import ConfigError, RemoteError

if TYPE_CHECKING:
    from sisyphus.config import Config

log = logging.getLogger(__name__)

REMOTE_KEYS = ("asr", "tts_custom", "tts_base")
# key → (what it is in messages, which server software serves it)
_LABELS = {
    "asr": ("ASR server", "vLLM"),
    "tts_custom": ("TTS server (CustomVoice)", "vLLM-Omni"),
    "tts_base": ("TTS server (Base)", "vLLM-Omni"),
}
# Longest wait between two attempts, whatever the backoff or Retry-After says.
MAX_BACKOFF_S = 4.0
_SNIPPET_CHARS = 160


@dataclass(frozen=True)
class Endpoint:
    """One remote model: where it is served, the name it is served under, how to reach it."""

    key: str  # "asr" | "tts_custom" | "tts_base"
    base_url: str  # e.g. http://gpu-box:8000/v1, without a trailing slash
    model: str  # the served model name sent with each request (models.<key>)
    timeout_s: float
    max_retries: int
    api_key: str = field(default="", repr=False)

    @property
    def label(self) -> str:
        return _LABELS[self.key][0]

    @property
    def software(self) -> str:
        return _LABELS[self.key][1]

    @property
    def where(self) -> str:
        return f"{self.label} {self.base_url}"

    @property
    def url_setting(self) -> str:
        return f"SISYPHUS_{self.key.upper()}_URL / remote.{self.key}_url"

    @property
    def key_setting(self) -> str:
        return f"SISYPHUS_{self.key.upper()}_API_KEY"


def remote_endpoint(config: Config, key: str) -> Endpoint | None:
    """The endpoint of `key` when a server is configured for it, else None (runs in process)."""
    remote = config.remote
    url = str(getattr(remote, f"{key}_url")).strip().rstrip("/")
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"remote.{key}_url must be an http:// or https:// URL, got {url!r}",
            f"set SISYPHUS_{key.upper()}_URL to the server's base URL, e.g. http://gpu-box:8000/v1",
        )
    return Endpoint(key, url, getattr(config.models, key), remote.timeout_s, remote.max_retries,
                    getattr(remote, f"{key}_api_key"))


def remote_keys(config: Config) -> set[str]:
    """Which of asr, tts_custom, tts_base are served remotely."""
    return {key for key in REMOTE_KEYS if remote_endpoint(config, key) is not None}


@dataclass
class OpenStream:
    """A streamed answer whose first bytes have arrived (so it can no longer be retried)."""

    response: Any  # httpx2.Response
    first: bytes
    rest: Iterator[bytes]
    opened_s: float  # perf_counter when the request was sent (the last attempt)

    def chunks(self) -> Iterator[bytes]:
        if self.first:
            yield self.first
        yield from self.rest

    def close(self) -> None:
        self.response.close()


class HttpClient:
    """One endpoint's connection pool, used by one worker thread at a time."""

    def __init__(self, endpoint: Endpoint, *, backoff_s: float = 0.25, rejected_hint: str = "") -> None:
        import httpx2

        self.endpoint = endpoint
        self.backoff_s = backoff_s  # first retry waits this long, then it doubles
        self._rejected_hint = rejected_hint or "check the settings this server refuses"
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        # Loading the CA store costs 0.2-0.4 s per client; a plain http:// server needs none.
        https = endpoint.base_url.startswith("https://")
        self._client = httpx2.Client(base_url=endpoint.base_url + "/", headers=headers, verify=https,
                                     timeout=httpx2.Timeout(endpoint.timeout_s))

    def close(self) -> None:
        self._client.close()

    # -- requests --------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A whole (small) answer; failures before it are retried, errors raised as RemoteError."""
        for attempt in self._attempts():
            try:
                response = self._client.request(method, path, **kwargs)
            except self._errors().TimeoutException as exc:
                raise self._timeout_error(exc) from exc
            except self._errors().TransportError as exc:
                if self._retry(attempt, None, f"{type(exc).__name__}"):
                    continue
                raise self._unreachable(exc, attempt) from exc
            if response.status_code >= 400:
                if self._retry(attempt, response, f"HTTP {response.status_code}"):
                    continue
                raise self.status_error(response, path, attempts=attempt)
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    def open_stream(self, path: str, *, json_body: dict[str, Any], accept: tuple[str, ...],
                    cancel: threading.Event | None = None,
                    on_headers: Callable[[Any], None] | None = None) -> OpenStream | None:
        """POST and wait for the answer's first bytes; None if `cancel` was set meanwhile.

        Everything that fails before those bytes is retried (see the module docstring);
        an answer that is not of a type in `accept` is an error naming what came instead.
        `on_headers(response)` runs once the headers are in, before the wait for the first
        byte (a streaming server sends them first), so a caller can watch that wait too.
        """
        errors = self._errors()
        for attempt in self._attempts():
            if cancel is not None and cancel.is_set():
                return None
            opened_s = time.perf_counter()
            request = self._client.build_request("POST", path, json=json_body)
            try:
                response = self._client.send(request, stream=True)
            except errors.TimeoutException as exc:
                raise self._timeout_error(exc) from exc
            except errors.TransportError as exc:
                if self._retry(attempt, None, type(exc).__name__, cancel):
                    continue
                raise self._unreachable(exc, attempt) from exc
            if response.status_code >= 400:
                response.read()
                response.close()
                if self._retry(attempt, response, f"HTTP {response.status_code}", cancel):
                    continue
                raise self.status_error(response, path, attempts=attempt)
            self._check_type(response, accept)
            if on_headers is not None:
                on_headers(response)
            rest = response.iter_bytes()
            try:
                first = next(rest, b"")
            except errors.TimeoutException as exc:
                response.close()
                raise self.stalled(first_byte=True) from exc
            except errors.TransportError as exc:
                response.close()
                if cancel is not None and cancel.is_set():
                    return None
                if self._retry(attempt, None, "connection dropped before the first byte", cancel):
                    continue
                raise self.broke_off() from exc
            return OpenStream(response, first, rest, opened_s)
        raise AssertionError("unreachable")

    def served_models(self) -> list[str] | None:
        """The model names the server lists at GET /models; None if it has no such route."""
        try:
            response = self.request("GET", "models")
        except RemoteError as exc:
            if "(HTTP 404)" in exc.message:
                return None  # a proxy without /models, say: the first real request will tell
            raise
        body = _json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f"{self.endpoint.where} answered GET /models with something that is not a model list",
                              f"check that {self.endpoint.url_setting} points at a {self.endpoint.software} server")
        return [str(item.get("id")) for item in data if isinstance(item, dict)]

    def check_model(self) -> list[str]:
        """Raise unless the server lists the endpoint's model; returns what it serves."""
        served = self.served_models()
        if served is None:
            log.info("%s lists no models; %s is not checked", self.endpoint.where, self.endpoint.model)
            return []
        if self.endpoint.model not in served:
            raise self._not_served(served)
        return served

    # -- errors ----------------------------------------------------------------------------
    def status_error(self, response: Any, path: str, *, attempts: int = 1) -> RemoteError:
        ep = self.endpoint
        status = response.status_code
        detail = server_message(response)
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if status in (401, 403):
            if not ep.api_key:
                return RemoteError(f"{ep.where} requires an API key (HTTP {status})", f"set {ep.key_setting}")
            return RemoteError(f"{ep.where} refused the API key (HTTP {status})",
                               f"set {ep.key_setting} to a key this server accepts")
        if status == 404 and "model" in detail.lower():
            return self._not_served(self._served_or_empty())
        if status == 404:
            return RemoteError(f"{ep.where} has no /{path} (HTTP 404)",
                               f"fix {ep.url_setting}: the base URL of a {ep.software} server, ending in /v1")
        if status == 429 or status >= 500:
            return RemoteError(f"{ep.where} answered HTTP {status}{tries}: {detail}",
                               "check the server's log, or try again in a moment")
        return RemoteError(f"{ep.where} rejected the request (HTTP {status}): {detail}", self._rejected_hint)

    def stalled(self, *, first_byte: bool = False) -> RemoteError:
        ep = self.endpoint
        what = "sent nothing" if first_byte else "stalled: nothing more arrived"
        return RemoteError(f"{ep.where} {what} for {ep.timeout_s:g} s",
                           "check the server's load and log, or raise remote.timeout_s")

    def broke_off(self) -> RemoteError:
        return RemoteError(f"{self.endpoint.where} broke the connection off mid-answer",
                           "check the server's log; the next turn tries again")

    def _not_served(self, served: list[str]) -> RemoteError:
        ep = self.endpoint
        listed = f" (it serves: {', '.join(served)})" if served else ""
        return RemoteError(f"{ep.where} does not serve the model '{ep.model}'{listed}",
                           f"set models.{ep.key} to the name the server was started with")

    def _served_or_empty(self) -> list[str]:
        try:
            return self.served_models() or []
        except RemoteError:
            return []

    def _unreachable(self, exc: Exception, attempts: int) -> RemoteError:
        ep = self.endpoint
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        return RemoteError(f"{ep.where} is unreachable{tries}: {_short(str(exc) or type(exc).__name__)}",
                           f"start the {ep.software} server (README: Scale out) or fix {ep.url_setting}")

    def _timeout_error(self, exc: Exception) -> RemoteError:
        if isinstance(exc, self._errors().ConnectTimeout):
            ep = self.endpoint
            return RemoteError(f"{ep.where} did not accept a connection within {ep.timeout_s:g} s",
                               f"check that the host is up, or fix {ep.url_setting}")
        return self.stalled(first_byte=True)

    def _check_type(self, response: Any, accept: tuple[str, ...]) -> None:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind.startswith(accept):
            return
        try:
            head = next(response.iter_bytes(), b"")
        except self._errors().HTTPError:
            head = b""
        response.close()
        snippet = _short(head[:400].decode("utf-8", "replace"))
        ep = self.endpoint
        got = f"{kind or 'no content type'}" + (f": {snippet}" if snippet else "")
        raise RemoteError(f"{ep.where} answered with {got} instead of {accept[0].rstrip('/')}",
                          f"check that {ep.url_setting} points at a {ep.software} server")

    # -- retries ---------------------------------------------------------------------------
    def _attempts(self) -> range:
        return range(1, self.endpoint.max_retries + 2)

    def _retry(self, attempt: int, response: Any, why: str, cancel: threading.Event | None = None) -> bool:
        """Whether to try again (after waiting); only connection failures, 429 and 5xx are retried."""
        if attempt > self.endpoint.max_retries:
            return False
        if response is not None and not (response.status_code == 429 or response.status_code >= 500):
            return False
        delay = min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
        retry_after = _retry_after_s(response)
        if retry_after is not None:
            delay = min(max(delay, retry_after), MAX_BACKOFF_S)
        log.warning("%s failed (%s), attempt %d/%d; retrying in %.2f s", self.endpoint.where, why, attempt,
                    self.endpoint.max_retries + 1, delay)
        if cancel is not None:
            return not cancel.wait(delay)
        time.sleep(delay)  # on a worker thread, never on the event loop
        return True

    @staticmethod
    def _errors() -> Any:
        import httpx2

        return httpx2


def server_message(response: Any) -> str:
    """The server's own words: OpenAI/vLLM error JSON, FastAPI's detail, or the text."""
    try:
        text = response.text
    except Exception:  # a body that cannot be decoded says nothing useful
        return f"HTTP {response.status_code}"
    body = _json_or_none(response)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _short(str(error["message"]))
        for key in ("message", "detail", "error"):
            if body.get(key):
                return _short(body[key] if isinstance(body[key], str) else json.dumps(body[key]))
    return _short(text) or f"HTTP {response.status_code}"


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after_s(response: Any) -> float | None:
    value = None if response is None else response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: our own backoff decides


def _short(text: str, limit: int = _SNIPPET_CHARS) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
