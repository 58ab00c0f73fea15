"""Turning a streamed speech answer into float32 samples: raw PCM, or OpenAI speech SSE.

Bytes arrive in pieces of any size: a 16-bit sample can be split between two network
reads, and an SSE event between many. Both decoders keep what is incomplete for the
next piece and never wait for more than they need. They do no I/O; the remote engine
feeds them and maps their errors to one-line RemoteErrors.

- PCM: signed 16-bit little-endian mono (vLLM-Omni's `response_format: "pcm"`).
- SSE: `speech.audio.delta` events carry base64 PCM in `audio`; the stream ends with
  `speech.audio.done`, or `speech.audio.error` with the server's message.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging

import numpy as np

log = logging.getLogger(__name__)


class BadStream(ValueError):
    """The server sent something that is not the documented stream format."""


class ServerReported(ValueError):
    """The server said, inside the stream, that generation failed (`speech.audio.error`)."""


class PcmDecoder:
    """s16le bytes → float32 in [-1, 1); an odd trailing byte waits for its partner."""

    def __init__(self) -> None:
        self._carry = b""
        self.done = False  # raw PCM has no end marker: the body's end is the end

    def push(self, data: bytes) -> list[np.ndarray]:
        if self._carry:
            data = self._carry + data
        whole = len(data) - len(data) % 2
        self._carry = data[whole:]
        if not whole:
            return []
        return [np.frombuffer(data, dtype="<i2", count=whole // 2).astype(np.float32) / 32768.0]

    def finish(self) -> None:
        if self._carry:
            log.warning("the PCM stream ended in the middle of a sample; its last byte was dropped")
            self._carry = b""


class SseDecoder:
    """OpenAI `speech.audio.*` server-sent events → float32 samples."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._pcm = PcmDecoder()
        self.done = False

    def push(self, data: bytes) -> list[np.ndarray]:
        self._buffer += data
        out: list[np.ndarray] = []
        while not self.done:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = self._buffer[:end].rstrip(b"\r").decode("utf-8", "replace")
            self._buffer = self._buffer[end + 1 :]
            if line:
                self._field(line)
            elif self._data or self._event:
                out.extend(self._dispatch())
        return out

    def finish(self) -> None:
        if not self.done:
            raise BadStream("the event stream ended without speech.audio.done")
        self._pcm.finish()

    def _field(self, line: str) -> None:
        if line.startswith(":"):
            return  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)

    def _dispatch(self) -> list[np.ndarray]:
        event, raw = self._event, "\n".join(self._data)
        self._event, self._data = "", []
        if raw.strip() == "[DONE]":
            self.done = True
            return []
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError:
            raise BadStream(f"an event that is not JSON: {raw[:80]!r}") from None
        if not isinstance(payload, dict):
            raise BadStream(f"an event that is not a JSON object: {raw[:80]!r}")
        kind = payload.get("type") or event
        if kind == "speech.audio.delta":
            return self._pcm.push(_b64(payload.get("audio")))
        if kind == "speech.audio.done":
            self.done = True
            return []
        if kind == "speech.audio.error":
            error = payload.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            raise ServerReported(str(message or "generation failed"))
        log.debug("ignored speech event %r", kind)
        return []


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise BadStream("a speech.audio.delta event without base64 audio")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadStream("a speech.audio.delta event whose audio is not base64") from None
