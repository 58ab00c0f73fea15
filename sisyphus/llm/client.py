"""Streaming chat against any OpenAI-compatible endpoint (OpenAI, DeepSeek, Ollama, vLLM, ...).

`ChatClient.stream` yields the reply's text deltas as they arrive, so the phrase chunker
and TTS can start on the first sentence while the LLM still writes the rest. Every failure
the user can fix becomes one `LLMError` with a hint; the turn controller shows that line
and the session goes on.

Retries are done here, not by the openai package (it is built with `max_retries=0`):
only failures before the first delta are retried (connection errors, 429, 5xx), because
text already handed to TTS cannot be taken back. Stalls are detected per chunk with
`llm.timeout_s`; cancellation (barge-in) closes the HTTP stream at once.

What arrives is not trusted: chunks are read by `stream.py`, so data that is not JSON, a
content that is not text, a 200 answer that is an HTML page or a reply without any text
each end the turn with one LLMError that says what came, and a server that ignores
`max_tokens` is cut off. The stream's `finish_reason` is kept for the caller.

What this module does not do: it keeps no history (see `history.py`) and does not cut
text into phrases (see `chunker.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import openai

from sisyphus.config import LlmConfig
from sisyphus.errors import LLMError
from sisyphus.llm.stream import (
    ReplyStream,
    completion_text,
    empty_reply_error,
    malformed,
    not_an_event_stream,
    read_body_preview,
    read_chunk,
)
from sisyphus.safetext import redact_url

logger = logging.getLogger(__name__)

# Sent when no key is configured: local servers (Ollama, llama.cpp, vLLM) ignore it,
# and the openai package refuses to start without one.
PLACEHOLDER_API_KEY = "sk-no-key-required"
# Longest wait between two attempts, whatever the backoff or Retry-After says.
MAX_BACKOFF_S = 8.0
# A server that ignores max_tokens must not stream forever: no token is longer than this.
MAX_CHARS_PER_TOKEN = 32

_UNREACHABLE_HINT = "start your LLM server or fix llm.base_url / OPENAI_BASE_URL"
_KEY_HINT = "set OPENAI_API_KEY to a key this endpoint accepts"
_MODEL_HINT = "set SISYPHUS_LLM_MODEL / llm.model to a model the endpoint serves"


class ChatClient:
    """One OpenAI-compatible endpoint; safe to reuse for every turn of a session."""

    def __init__(self, config: LlmConfig, *, backoff_s: float = 0.5) -> None:
        self.config = config
        # First retry waits backoff_s, then doubles (capped at MAX_BACKOFF_S).
        self.backoff_s = backoff_s
        self.url = redact_url(config.base_url)  # for messages: never show credentials
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or PLACEHOLDER_API_KEY,
            timeout=openai.Timeout(config.timeout_s),
            max_retries=0,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def stream(self, messages: list[dict[str, str]]) -> ReplyStream:
        """The reply's text deltas as they arrive; raise LLMError on failure.

        Deltas already yielded stay yielded when the stream breaks later; a stream that
        ends without any text is an error too. Its `finish_reason` is set at the end.
        Consume it with `contextlib.aclosing(...)` so an abandoned reply closes its HTTP
        stream at once.
        """
        return ReplyStream(lambda reply: self._stream(messages, reply))

    async def _stream(self, messages: list[dict[str, str]], reply: ReplyStream) -> AsyncIterator[str]:
        response = await self._open(messages)
        try:
            content_type = response.response.headers.get("content-type", "")
            if "json" in content_type.split(";")[0]:
                deltas = self._whole(response, reply)  # a server that ignores stream: true
            elif content_type and "event-stream" not in content_type:
                raise not_an_event_stream(content_type, await read_body_preview(response.response))
            else:
                deltas = self._deltas(response, reply)
            async with contextlib.aclosing(deltas) as texts:
                async for text in texts:
                    yield text
        finally:
            await response.close()

    async def check(self) -> str:
        """A cheap probe for `sisyphus doctor`: is the endpoint up, the key good, the model served?

        Returns a short description without the URL (the caller shows that); no retries.
        """
        model = self.config.model
        try:
            listing = await self._client.models.list()
            ids = [m.id for m in listing.data]
        except openai.NotFoundError:
            ids = []  # some servers have no /models; the 1-token chat below decides
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise self._request_error(exc, attempts=1) from exc
        if model in ids or f"{model}:latest" in ids:
            return f"serves {model} ({len(ids)} model{'s' * (len(ids) != 1)} listed)"
        try:
            await self._client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=1, stream=False
            )
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise self._request_error(exc, attempts=1) from exc
        return f"answered a 1-token chat with {model}"

    # -- opening the stream, with retries ----------------------------------------------
    async def _open(self, messages: list[dict[str, str]]) -> Any:
        attempts = self.config.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._client.chat.completions.create(
                    model=self.config.model,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=self.config.temperature,
                    max_tokens=self.config.max_tokens,
                    stream=True,
                )
            except (openai.APIConnectionError, openai.APIStatusError) as exc:
                if attempt == attempts or not _retryable(exc):
                    raise self._request_error(exc, attempts=attempt) from exc
                delay = self._backoff(attempt, exc)
                logger.warning(
                    "LLM request failed (%s), attempt %d/%d; retrying in %.2f s",
                    _describe(exc), attempt, attempts, delay,
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _backoff(self, attempt: int, exc: Exception) -> float:
        delay = self.backoff_s * 2 ** (attempt - 1)
        if isinstance(exc, openai.APIStatusError):
            retry_after = _retry_after_s(exc)
            if retry_after is not None:
                delay = max(delay, retry_after)
        return min(delay, MAX_BACKOFF_S)

    # -- reading the stream --------------------------------------------------------------
    async def _deltas(self, response: Any, reply: ReplyStream) -> AsyncIterator[str]:
        chunks = response.__aiter__()
        said, chars, limit = False, 0, self.config.max_tokens * MAX_CHARS_PER_TOKEN
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), timeout=self.config.timeout_s)
            except StopAsyncIteration:
                break
            except (asyncio.TimeoutError, openai.APITimeoutError) as exc:
                raise LLMError(
                    f"the LLM stream stalled: no data for {self.config.timeout_s:g} s",
                    "check the LLM server, or raise llm.timeout_s",
                ) from exc
            except openai.APIConnectionError as exc:
                raise LLMError(
                    f"the LLM stream from {self.url} broke off mid-reply",
                    "check the LLM server's log; speak again to retry",
                ) from exc
            except openai.APIError as exc:
                raise LLMError(
                    f"the LLM endpoint reported an error mid-reply: {_short(exc.message)}",
                    "check the LLM server's log; speak again to retry",
                ) from exc
            except UnicodeDecodeError as exc:
                around = exc.object[max(0, exc.start - 40) : exc.end + 40]
                raise malformed("bytes that are not UTF-8", around, raw=True) from exc
            except json.JSONDecodeError as exc:
                raise malformed("data that is not JSON", exc.doc, raw=True) from exc
            text, finish = read_chunk(chunk)
            if finish:
                reply.finish_reason = finish
            if text:
                said, chars = True, chars + len(text)
                yield text
            if chars > limit:
                logger.warning("the LLM stream went past %d characters with llm.max_tokens=%d; cut there",
                               limit, self.config.max_tokens)  # fmt: skip
                reply.finish_reason = "length"
                break
        self._ended(reply, said)

    async def _whole(self, response: Any, reply: ReplyStream) -> AsyncIterator[str]:
        """The text of a non-streamed completion, read within llm.timeout_s."""
        try:
            body = await asyncio.wait_for(response.response.aread(), timeout=self.config.timeout_s)
        except (asyncio.TimeoutError, openai.APITimeoutError) as exc:
            raise LLMError(f"the LLM endpoint's answer stalled: no data for {self.config.timeout_s:g} s",
                           "check the LLM server, or raise llm.timeout_s") from exc  # fmt: skip
        except Exception as exc:  # the transport's own errors: httpx is not ours to name
            raise LLMError(
                f"the answer from {self.url} broke off", "check the LLM server's log; speak again to retry"
            ) from exc
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise malformed("a body that is not JSON", body, raw=True) from exc
        text, reply.finish_reason = completion_text(data)
        if text:
            yield text
        self._ended(reply, bool(text))

    def _ended(self, reply: ReplyStream, said: bool) -> None:
        if not said:
            raise empty_reply_error(reply.finish_reason, self.config.max_tokens)
        if reply.finish_reason == "length":
            logger.info("LLM reply cut at llm.max_tokens=%d", self.config.max_tokens)
        elif reply.finish_reason is None:
            # A body cut short raises above (incomplete chunked read); a cleanly ended body
            # without finish_reason is the server's own choice, so the reply stands.
            logger.warning("LLM stream from %s ended without a finish_reason", self.url)

    # -- errors ---------------------------------------------------------------------------
    def _request_error(self, exc: Exception, *, attempts: int) -> LLMError:
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(
                f"LLM endpoint {self.url} did not answer within {self.config.timeout_s:g} s{tries}",
                "check the LLM server, or raise llm.timeout_s",
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(f"LLM endpoint {self.url} is unreachable{tries}", _UNREACHABLE_HINT)
        assert isinstance(exc, openai.APIStatusError)
        status = exc.status_code
        if status in (401, 403):
            if not self.config.api_key:
                return LLMError(f"the LLM endpoint requires an API key (HTTP {status})", "set OPENAI_API_KEY")
            return LLMError(f"the LLM endpoint refused the API key (HTTP {status})", _KEY_HINT)
        detail = _short(_status_message(exc))
        if status == 404 and (exc.code == "model_not_found" or self.config.model in detail):
            return LLMError(
                f"the LLM endpoint {self.url} has no model '{self.config.model}' (HTTP 404)", _MODEL_HINT
            )
        if status == 404:
            return LLMError(
                f"the LLM endpoint {self.url} has no chat API (HTTP 404 for {exc.request.url.path})",
                "fix llm.base_url / OPENAI_BASE_URL (most servers want it to end in /v1)",
            )
        if status == 429 or status >= 500:
            return LLMError(
                f"the LLM endpoint answered HTTP {status}{tries}: {detail}",
                "wait a moment and speak again, or check the LLM server",
            )
        return LLMError(
            f"the LLM endpoint rejected the request (HTTP {status}): {detail}",
            "check llm.model, llm.max_tokens and llm.temperature for this server",
        )


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500)


def _retry_after_s(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _status_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message


def _describe(exc: Exception) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
