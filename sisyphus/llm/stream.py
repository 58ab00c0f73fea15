"""Reading what an OpenAI-compatible endpoint streams back, without trusting its shape.

The openai package builds chunk objects leniently: a delta whose content is a number, a
`choices` that is a string or a chunk that is not an object reach the caller as they
came, and data that is not JSON (or not UTF-8) raises plain ValueErrors mid-iteration.
A proxy may answer 200 with an HTML page, and a server may end a stream without a word.
Every such case here becomes one `LLMError` that says what arrived, so the turn ends with
one line and the session goes on.

What this module does not do: open requests, retry, or time out (see client.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from sisyphus.errors import LLMError

PREVIEW_CHARS = 80
# At most this much of a body that is not an event stream is read to say what it was.
PREVIEW_BYTES = 4096
# Text that is said instead of `content` when a model refuses (OpenAI's `delta.refusal`).
_TEXT_FIELDS = ("content", "refusal")

_SERVER_HINT = "check that llm.base_url is an OpenAI-compatible endpoint and look at its log; speak again to retry"


def malformed(what: str, data: object, *, raw: bool = False) -> LLMError:
    """The error for data Sisyphus cannot read: what was wrong and a short preview of it
    (as JSON, or as it came with `raw`)."""
    return LLMError(f"the LLM stream sent {what}: {preview(data, raw=raw)}", _SERVER_HINT)


def preview(data: object, *, raw: bool = True) -> str:
    """A short one-line rendering of `data` for an error message; strings as they are
    with `raw`, else everything as JSON."""
    if isinstance(data, bytes):
        text = data.decode("utf-8", errors="replace")
    elif isinstance(data, str) and raw:
        text = data
    else:
        try:
            text = json.dumps(_plain(data), ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(data)
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


def read_chunk(chunk: object) -> tuple[str, str | None]:
    """The text and finish_reason that one streamed chunk adds to the reply.

    Only the first choice (index 0 or none given) is read: a server that sends several
    would otherwise interleave two replies. `content` (or `refusal`) must be a string or
    null; anything else raises LLMError. Fields Sisyphus does not use (reasoning, tool
    calls, usage, logprobs) are ignored.
    """
    if not _is_object(chunk):
        raise malformed("a chunk that is not a JSON object", chunk)
    choices = _field(chunk, "choices")
    if choices is None:
        return "", None  # e.g. the final usage chunk
    if not isinstance(choices, list):
        raise malformed("a chunk whose choices are not a list", choices)
    text, finish = "", None
    for choice in choices:
        if not _is_object(choice):
            raise malformed("a choice that is not a JSON object", choice)
        index = _field(choice, "index")
        if index not in (None, 0):
            continue
        finish_reason = _field(choice, "finish_reason")
        if finish_reason is not None and not isinstance(finish_reason, str):
            raise malformed("a finish_reason that is not a string", finish_reason)
        finish = finish_reason or finish
        delta = _field(choice, "delta")
        if delta is None:
            continue
        if not _is_object(delta):
            raise malformed("a delta that is not a JSON object", delta)
        for name in _TEXT_FIELDS:
            text += _text_of(_field(delta, name), name)
    return text, finish


def _text_of(value: object, name: str) -> str:
    """A delta field as text: a string, null, or a list of typed parts (some servers send
    `[{"type": "text", "text": ...}]`; parts of other types, such as thinking, are skipped)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(_is_object(part) for part in value):
        texts = [_field(part, "text") for part in value if _field(part, "type") == "text"]
        if all(isinstance(t, str) for t in texts):
            return "".join(texts)
    raise malformed(f"a delta whose {name} is {_kind(value)}, not text", value)


def completion_text(body: object) -> tuple[str, str | None]:
    """Text and finish_reason of a whole (non-streamed) chat completion, for servers that
    ignore `stream: true` and answer with one JSON object."""
    if _is_object(body) and _is_object(_field(body, "error")):
        message = _field(_field(body, "error"), "message")
        shown = preview(message or body, raw=isinstance(message, str))
        raise LLMError(f"the LLM endpoint reported an error: {shown}", _SERVER_HINT)
    choices = _field(body, "choices") if _is_object(body) else None
    if not isinstance(choices, list) or not choices or not _is_object(choices[0]):
        raise malformed("a JSON answer that is not a chat completion", body)
    message = _field(choices[0], "message")
    content = _field(message, "content") if _is_object(message) else None
    if content is not None and not isinstance(content, str):
        raise malformed(f"a completion whose content is {_kind(content)}, not text", body)
    finish = _field(choices[0], "finish_reason")
    return content or "", finish if isinstance(finish, str) else None


async def read_body_preview(response: Any) -> bytes:
    """The first PREVIEW_BYTES of an httpx response body, without reading the rest."""
    data = b""
    async for piece in response.aiter_bytes():
        data += piece
        if len(data) >= PREVIEW_BYTES:
            break
    return data[:PREVIEW_BYTES]


def not_an_event_stream(content_type: str, body: bytes) -> LLMError:
    kind = content_type.split(";")[0].strip() or "no Content-Type"
    shown = preview(body) if body.strip() else "an empty body"
    return LLMError(
        f"the LLM endpoint answered HTTP 200 with {kind}, not an event stream: {shown}",
        "a proxy or login page may be in the way: check llm.base_url, HTTPS_PROXY and NO_PROXY",
    )


def empty_reply_error(finish_reason: str | None, max_tokens: int) -> LLMError:
    """The error for a stream that ended without any text."""
    if finish_reason == "length":
        return LLMError(
            f"the LLM used all of llm.max_tokens ({max_tokens}) before writing any text",
            "raise llm.max_tokens (a reasoning model may spend them thinking)",
        )
    if finish_reason == "content_filter":
        return LLMError("the LLM endpoint's content filter withheld the reply", "rephrase and speak again")
    reason = f"finish_reason: {finish_reason}" if finish_reason else "no finish_reason"
    return LLMError(
        f"the LLM sent an empty reply ({reason})", "speak again; if it repeats, check the model and the server's log"
    )


def cut_short_notice(finish_reason: str | None) -> str | None:
    """A line for the user when the reply was cut before its natural end, else None."""
    if finish_reason == "length":
        return "the reply was cut short at llm.max_tokens; raise llm.max_tokens for longer replies"
    if finish_reason == "content_filter":
        return "the LLM endpoint's content filter cut the reply short"
    return None


class ReplyStream:
    """The text deltas of one reply (an async iterator of str); `finish_reason` is known
    once it is exhausted. Close it (`contextlib.aclosing`) to drop the HTTP stream early."""

    def __init__(self, produce: Callable[[ReplyStream], AsyncIterator[str]]) -> None:
        # `produce` gets this object, to set finish_reason as the chunks say it.
        self.finish_reason: str | None = None
        self._deltas = produce(self)

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        return await self._deltas.__anext__()

    async def aclose(self) -> None:
        close = getattr(self._deltas, "aclose", None)
        if close is not None:
            await close()


def _is_object(value: object) -> bool:
    """A JSON object: a dict, or one of the openai package's model objects."""
    return isinstance(value, Mapping) or hasattr(value, "model_fields_set")


def _field(obj: object, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    extra = getattr(obj, "model_extra", None) or {}
    return getattr(obj, name, extra.get(name))


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if _is_object(value):
        return "an object"
    return f"a {type(value).__name__}"


def _plain(data: object) -> object:
    """openai model objects as dicts (as they came, no validation), for previews."""
    if isinstance(data, Mapping):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    if _is_object(data):
        fields = {name: getattr(data, name, None) for name in getattr(type(data), "model_fields", {})}
        fields.update(getattr(data, "model_extra", None) or {})
        return {k: _plain(v) for k, v in fields.items() if v is not None}
    return data
