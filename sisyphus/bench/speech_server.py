"""Stand-in vLLM (GLM-ASR) and vLLM-Omni (Qwen3-TTS) servers on 127.0.0.1, scriptable per request.

No vLLM runs on a CPU test machine, so tests and benchmarks point the real remote
engines at these instead of mocking them: the whole HTTP path runs (multipart upload,
JSON, chunked streaming, SSE, status errors, stalls, disconnects, a client closing a
stream early). One server serves one model, as vLLM does, of one kind:

- "asr": `POST /v1/audio/transcriptions` → `{"text": ...}` (the behavior's text)
- "custom" / "base": `POST /v1/audio/speech` → a tone of the behavior's length as 24 kHz
  s16le, streamed raw (`stream_format: "audio"`) or as SSE events, in small irregular
  pieces (odd sizes, so samples split across reads), and `GET /v1/audio/voices`
- all: `GET /v1/models`, `GET /health`

Requests are checked as the real servers check them (speech_rules.py). Each takes the
next queued `SpeechBehavior` (`server.script(...)`) or `server.default`; faults are
behaviors (an HTTP status, a dropped connection, a stall, a disconnect mid-stream, a
non-audio body, an SSE error event). Every request is recorded with what was sent, when
its first audio byte went out and when the client hung up, so a benchmark can tell the
server's share of a latency from the client's.

Standalone, for a manual `sisyphus talk` without a GPU box::

    python -m sisyphus.bench.speech_server --kind custom --port 8091
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from sisyphus.bench import speech_rules as rules
from sisyphus.bench.llm_server import (
    CLIENT_CLOSED,
    COMPLETED,
    DISCONNECTED,
    STALLED,
    _Server,
    _shutdown_quietly,
)
from sisyphus.bench.speech_stream import StreamingHandler

logger = logging.getLogger(__name__)

ASR, CUSTOM, BASE = "asr", "custom", "base"
MODELS = {ASR: rules.ASR_MODEL, CUSTOM: rules.CUSTOM_MODEL, BASE: rules.BASE_MODEL}
SAMPLE_RATE_HZ = 24_000
__all__ = ["ASR", "BASE", "CLIENT_CLOSED", "COMPLETED", "CUSTOM", "DISCONNECTED", "STALLED", "SpeechBehavior",
           "SpeechRecord", "SpeechTestServer", "tone"]


@dataclass(frozen=True)
class SpeechBehavior:
    """What the server does with one ASR or TTS request."""

    # ASR: the transcript, or a function of the uploaded samples.
    text: str | Callable[[np.ndarray], str] = "hello there"
    # TTS: seconds of audio; None: 0.05 s per character of input, at least 0.3 s.
    audio_s: float | None = None
    # Delay before the first audio byte (after the headers) or the ASR answer, and between pieces.
    first_byte_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    # Answer this HTTP status instead (with Retry-After when set).
    status: int | None = None
    retry_after_s: float | None = None
    # Close the connection before answering.
    drop_connection: bool = False
    # TTS: after this many audio bytes stop sending (connection left open), or drop the connection.
    stall_after_bytes: int | None = None
    disconnect_after_bytes: int | None = None
    # TTS over SSE: a speech.audio.error event after this many audio bytes.
    error_event_after_bytes: int | None = None
    # Answer 200 with an HTML page (a proxy's error page, say) instead of audio or JSON.
    non_audio: bool = False


@dataclass
class SpeechRecord:
    """One request as the server received it, and how it ended."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any = None  # TTS: the parsed JSON
    fields: dict[str, str] = field(default_factory=dict)  # ASR: the form fields
    upload: rules.Wav | None = None  # ASR: the uploaded audio
    reference: rules.Wav | None = None  # TTS Base: the decoded ref_audio
    status: int = 0
    outcome: str = ""
    pcm: bytes = b""  # TTS: all the audio this answer carries
    bytes_sent: int = 0  # of pcm
    received_s: float = 0.0  # perf_counter when the request had been read
    first_audio_s: float | None = None  # just before the first audio bytes were written
    closed_s: float | None = None  # when the server saw the client hang up
    client_port: int = 0  # the same port for two requests: the client reused its connection
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def tone(seconds: float, voice: str) -> bytes:
    """A steady tone whose pitch depends on the voice, as s16le at 24 kHz (what the TTS 'says')."""
    n = max(0, int(round(seconds * SAMPLE_RATE_HZ)))
    pitch_hz = 150 + zlib.crc32(voice.encode()) % 250
    t = np.arange(n) / SAMPLE_RATE_HZ
    return np.round(0.3 * np.sin(2 * np.pi * pitch_hz * t) * 32767).astype("<i2").tobytes()


class SpeechTestServer:
    """A background stand-in speech server of one `kind`; use as a context manager."""

    def __init__(self, kind: str, *, model: str | None = None, port: int = 0, api_key: str | None = None,
                 default: SpeechBehavior | None = None, list_models: bool = True) -> None:
        if kind not in MODELS:
            raise ValueError(f"kind must be one of {', '.join(MODELS)}, got {kind!r}")
        self.kind = kind
        self.model = model or MODELS[kind]
        self.api_key = api_key  # when set, requests without `Authorization: Bearer <key>` get 401
        self.default = default or SpeechBehavior()
        self.list_models = list_models  # False: no GET /v1/models (as behind some proxies)
        self.requests: list[SpeechRecord] = []
        self._queue: deque[SpeechBehavior] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._connections: set[Any] = set()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self  # type: ignore[assignment]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"speech-test-server-{kind}", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *behaviors: SpeechBehavior) -> None:
        """Queue behaviors for the next ASR/TTS requests, in order."""
        with self._lock:
            self._queue.extend(behaviors)

    def work_requests(self) -> list[SpeechRecord]:
        """The transcription/speech requests (not model lists or health checks)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def wait_for(self, count: int, timeout_s: float = 10.0, *, finished: bool = True) -> list[SpeechRecord]:
        """Block until `count` POST requests have finished (or only arrived); returns them."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                done = [r for r in self.requests if r.method == "POST" and (r.finished.is_set() or not finished)]
                left = deadline - time.monotonic()
                if len(done) >= count or left <= 0:
                    return done
                self._changed.wait(left)

    def close(self) -> None:
        """Stop serving, release stalled handlers and close open connections."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            _shutdown_quietly(conn)
        self._httpd.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> SpeechTestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the handler ------------------------------------------------------------
    def _next_behavior(self) -> SpeechBehavior:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, record: SpeechRecord) -> None:
        with self._changed:
            self.requests.append(record)
            self._changed.notify_all()

    def _finish(self, record: SpeechRecord, outcome: str) -> None:
        with self._changed:
            if not record.outcome:
                record.outcome = outcome
            record.finished.set()
            self._changed.notify_all()


class _Handler(StreamingHandler, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def owner(self) -> SpeechTestServer:
        return self.server.owner  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        record = self._start(None)
        owner = self.owner
        route = self.path.split("?")[0].rstrip("/")
        if self._refuse_key(record):
            pass
        elif route == "/v1/models" and owner.list_models:
            self._send_json(record, 200, {"object": "list", "data": [
                {"id": owner.model, "object": "model", "created": 0, "owned_by": "vllm"}]})
        elif route == "/health":
            self._send_json(record, 200, {})
        elif route == "/v1/audio/voices" and owner.kind != ASR:
            voices = list(rules.SPEAKERS) if owner.kind == CUSTOM else []
            self._send_json(record, 200, {"voices": voices, "uploaded_voices": []})
        else:
            self._send_json(record, 404, {"detail": "Not Found"})
        owner._finish(record, COMPLETED)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        record = self._start(raw)
        record.received_s = time.perf_counter()
        try:
            self._answer(record, raw)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            record.closed_s = record.closed_s or time.perf_counter()
            self.owner._finish(record, CLIENT_CLOSED)
            self.close_connection = True
        else:
            self.owner._finish(record, COMPLETED)

    def _answer(self, record: SpeechRecord, raw: bytes) -> None:
        owner = self.owner
        route = self.path.split("?")[0].rstrip("/")
        wanted = "/v1/audio/transcriptions" if owner.kind == ASR else "/v1/audio/speech"
        if route != wanted:
            self._send_json(record, 404, {"detail": "Not Found"})
            return
        if self._refuse_key(record):
            return
        problem = self._parse_asr(record, raw) if owner.kind == ASR else self._parse_tts(record, raw)
        if problem is not None:
            self._send_json(record, problem[0], rules.error_body(*problem))
            return
        behavior = owner._next_behavior()
        if behavior.drop_connection:
            self._drop(record)
        elif behavior.status is not None:
            headers = {"Retry-After": f"{behavior.retry_after_s:g}"} if behavior.retry_after_s is not None else {}
            message = f"scripted HTTP {behavior.status}"
            self._send_json(record, behavior.status, rules.error_body(behavior.status, message), headers)
        elif behavior.non_audio:
            self._send_bytes(record, 200, "text/html", b"<html><body>502 Bad Gateway (proxy)</body></html>")
        elif owner.kind == ASR:
            self._transcribe(record, behavior)
        else:
            self._speak(record, behavior)

    # -- ASR --------------------------------------------------------------------------------
    def _parse_asr(self, record: SpeechRecord, raw: bytes) -> rules.Problem:
        if not record.content_type.startswith("multipart/form-data"):
            return 400, f"Expected multipart/form-data, got {record.content_type or 'no content type'}"
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + record.content_type.encode() + b"\r\n\r\n"
                                                      + raw)
        if not message.is_multipart():
            return 400, "The multipart body could not be parsed"
        files: dict[str, tuple[str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                files[str(name)] = (str(part.get_filename()), payload)
            else:
                record.fields[str(name)] = payload.decode("utf-8")
        if "file" in files:
            record.upload = rules.read_wav(files["file"][1])
        return rules.check_transcription(record.fields, files, self.owner.model)

    def _transcribe(self, record: SpeechRecord, behavior: SpeechBehavior) -> None:
        if not self._pause(behavior.first_byte_delay_s, record):
            return
        if behavior.stall_after_bytes is not None:
            self._stall(record)
            return
        assert record.upload is not None
        text = behavior.text(record.upload.samples) if callable(behavior.text) else behavior.text
        self._send_json(record, 200, {"text": text})

    # -- TTS --------------------------------------------------------------------------------
    def _parse_tts(self, record: SpeechRecord, raw: bytes) -> rules.Problem:
        if not record.content_type.startswith("application/json"):
            return 400, f"Expected application/json, got {record.content_type or 'no content type'}"
        try:
            record.body = json.loads(raw or b"null")
        except json.JSONDecodeError:
            return 400, "The body is not valid JSON"
        problem = rules.check_speech(record.body, self.owner.kind, self.owner.model)
        if problem is None and isinstance(record.body.get("ref_audio"), str):
            record.reference = rules.reference_wav(record.body["ref_audio"])
        return problem

    def _speak(self, record: SpeechRecord, behavior: SpeechBehavior) -> None:
        body = record.body
        seconds = behavior.audio_s if behavior.audio_s is not None else max(0.3, 0.05 * len(body["input"]))
        if body.get("max_new_tokens"):
            seconds = min(seconds, body["max_new_tokens"] / 12.5)
        voice = body.get("voice") or (body.get("ref_text") or "clone")
        record.pcm = tone(seconds, voice)
        sse = body.get("stream_format") == "sse" or (body.get("stream_format") is None and body.get("stream"))
        if sse:
            self._stream(record, behavior, "text/event-stream", _sse_delta, _SSE_DONE)
        elif body.get("stream_format") == "audio":
            self._stream(record, behavior, "audio/pcm", lambda piece: piece, b"")
        elif self._pause(behavior.first_byte_delay_s, record):
            record.first_audio_s = time.perf_counter()
            self._send_bytes(record, 200, "audio/pcm", record.pcm)
            record.bytes_sent = len(record.pcm)

    def _refuse_key(self, record: SpeechRecord) -> bool:
        key = self.owner.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return False
        self._send_json(record, 401, rules.error_body(401, "Unauthorized"))
        return True

    def _start(self, raw: bytes | None) -> SpeechRecord:
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = SpeechRecord(self.command, self.path, headers, client_port=int(self.client_address[1]))
        self.owner._record(record)
        return record


_SSE_DONE = (b"event: speech.audio.done\ndata: "
             + json.dumps({"type": "speech.audio.done", "usage": {"input_tokens": 0, "output_tokens": 0,
                                                                   "total_tokens": 0}}).encode() + b"\n\n")


def _sse_delta(piece: bytes) -> bytes:
    payload = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode(), "response_format": "pcm"}
    return b"event: speech.audio.delta\ndata: " + json.dumps(payload).encode() + b"\n\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Stand-in vLLM / vLLM-Omni speech server on 127.0.0.1.")
    parser.add_argument("--kind", choices=sorted(MODELS), required=True)
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--model", default=None, help="served model name (default: the official repo id)")
    parser.add_argument("--text", default="hello there", help="ASR: the transcript of every utterance")
    parser.add_argument("--first-byte-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    behavior = SpeechBehavior(text=args.text, first_byte_delay_s=args.first_byte_ms / 1000)
    server = SpeechTestServer(args.kind, model=args.model, port=args.port, default=behavior)
    logger.info("serving %s (%s) at %s; Ctrl-C stops", server.model, args.kind, server.base_url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
