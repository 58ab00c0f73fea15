"""A real OpenAI-compatible chat server on 127.0.0.1, scriptable per request.

Tests (and the benchmarks) point the real `openai` client at it instead of mocking the
client, so the whole HTTP path runs: connection setup, status errors, SSE parsing,
stalls, disconnects and the client closing a stream early. It speaks
`POST /v1/chat/completions` (streaming SSE and plain JSON, with a final usage chunk when
the request sets `stream_options.include_usage`; one delta counts as one token) and
`GET /v1/models`.

Each chat request takes the next queued `Behavior` (`server.script(...)`) or, when the
queue is empty, `server.default`. Every request is recorded (`server.requests`) with its
messages, model and temperature, and with how the exchange ended (`RequestRecord.outcome`).

It is stdlib only (ThreadingHTTPServer in a background thread) and bounded: `close()`
releases stalled handlers, shuts down open connections and joins the thread.

Standalone, for manual `sisyphus talk` runs::

    python -m sisyphus.bench.llm_server --port 8000 --reply "Hello there. How are you?"
    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 SISYPHUS_LLM_MODEL=test-model sisyphus talk
"""

from __future__ import annotations

import argparse
import json
import logging
import select
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

ReplyText = str | Callable[[list[dict[str, Any]]], str]

# How a request ended, as seen by the server.
COMPLETED = "completed"  # full reply (or error status) sent
CLIENT_CLOSED = "client_closed"  # the client closed the connection before the reply ended
DISCONNECTED = "disconnected"  # the server dropped the connection on purpose
STALLED = "stalled"  # the server stopped sending and the server was closed meanwhile


@dataclass(frozen=True)
class Behavior:
    """What the server does with one chat request."""

    # The reply, or a function of the request's messages (e.g. an echo).
    reply: ReplyText = "Hello! This is the test server."
    # The reply is streamed in deltas of this many characters.
    chunk_chars: int = 4
    # Delay before the first delta (time to first token) and between deltas.
    first_token_delay_s: float = 0.0
    inter_token_delay_s: float = 0.0
    # finish_reason of the last chunk; None leaves that chunk out (some servers do).
    finish_reason: str | None = "stop"
    # Delay before the response headers (a server slow to accept the request).
    response_delay_s: float = 0.0
    # An HTTP error status (401, 404, 429, 500, ...) answered instead of a reply.
    status: int | None = None
    # Retry-After header sent with an error status.
    retry_after_s: float | None = None
    # Stop sending after this many deltas, leaving the connection open.
    stall_after: int | None = None
    # Close the socket after this many deltas (no final chunk, no [DONE]).
    disconnect_after: int | None = None
    # Close the connection before sending any response.
    drop_connection: bool = False
    # Send an SSE error event after this many deltas (as OpenAI does mid-stream).
    error_event_after: int | None = None
    # Raw SSE `data:` payloads sent instead of the reply's chunks, then [DONE]: malformed
    # streams (text that is not JSON, a content that is a number, bytes not UTF-8, ...).
    # `chunk_event(...)` makes well-formed ones to mix in.
    events: tuple[str | bytes, ...] | None = None
    # A 200 answer with this body instead of any reply (a proxy's HTML page, say).
    body: str | None = None
    content_type: str = "text/html; charset=utf-8"


@dataclass
class RequestRecord:
    """One request as the server received it, and how it ended."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any] | None
    outcome: str = ""
    deltas_sent: int = 0
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages", []))

    @property
    def model(self) -> str | None:
        return (self.body or {}).get("model")

    @property
    def temperature(self) -> float | None:
        return (self.body or {}).get("temperature")

    @property
    def stream(self) -> bool:
        return bool((self.body or {}).get("stream"))

    @property
    def include_usage(self) -> bool:
        """The client asked for a final usage chunk (`stream_options.include_usage`)."""
        options = (self.body or {}).get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))


class OpenAITestServer:
    """A background OpenAI-compatible server; use as a context manager."""

    def __init__(
        self,
        *,
        port: int = 0,
        models: Sequence[str] = ("test-model",),
        api_key: str | None = None,
        default: Behavior | None = None,
    ) -> None:
        self.models = list(models)
        # When set, requests without `Authorization: Bearer <api_key>` get 401.
        self.api_key = api_key
        self.default = default or Behavior()
        self.requests: list[RequestRecord] = []
        self._queue: deque[Behavior] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._serve, name="openai-test-server", daemon=True)
        self._thread.start()

    # -- public -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *behaviors: Behavior) -> None:
        """Queue behaviors for the next chat requests, in order."""
        with self._lock:
            self._queue.extend(behaviors)

    @property
    def chat_requests(self) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> list[RequestRecord]:
        """Block until `count` chat requests have *finished*; returns them."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                done = [r for r in self.requests if r.path.endswith("/chat/completions") and r.finished.is_set()]
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

    def __enter__(self) -> OpenAITestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve_until_interrupted(self) -> None:
        """Standalone use: block until Ctrl-C, then close."""
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    # -- used by the handler ------------------------------------------------------------
    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)

    def _next_behavior(self) -> Behavior:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, record: RequestRecord) -> None:
        with self._changed:
            self.requests.append(record)
            self._changed.notify_all()

    def _finish(self, record: RequestRecord, outcome: str) -> None:
        with self._changed:
            if not record.outcome:
                record.outcome = outcome
            record.finished.set()
            self._changed.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: OpenAITestServer

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.owner._lock:
            self.owner._connections.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        logger.debug("%s " + format, self.address_string(), *args)

    # -- routing ------------------------------------------------------------------------
    def do_GET(self) -> None:
        record = self._start_record(None)
        if self._refuse_key(record):
            return
        if self.path.rstrip("/") == "/v1/models":
            owner = self.server.owner
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "sisyphus-test"} for m in owner.models]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"no route {self.path}", "invalid_request_error", "not_found")
        self.server.owner._finish(record, COMPLETED)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        record = self._start_record(body if isinstance(body, dict) else None)
        try:
            self._answer_post(record)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.server.owner._finish(record, CLIENT_CLOSED)
            self.close_connection = True
        else:
            self.server.owner._finish(record, COMPLETED)

    def _answer_post(self, record: RequestRecord) -> None:
        owner = self.server.owner
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, f"no route {self.path}", "invalid_request_error", "not_found")
            return
        if self._refuse_key(record):
            return
        if record.body is None or not isinstance(record.body.get("messages"), list):
            self._send_error(400, "body must be JSON with a messages list", "invalid_request_error", None)
            return
        behavior = owner._next_behavior()
        if not self._pause(behavior.response_delay_s, record):
            return
        if behavior.drop_connection:
            self._drop(record)
            return
        if behavior.status is not None:
            headers = {"Retry-After": f"{behavior.retry_after_s:g}"} if behavior.retry_after_s is not None else {}
            self._send_error(behavior.status, f"scripted HTTP {behavior.status}", "server_error", None, headers)
            return
        if record.model not in owner.models:
            message = f"The model `{record.model}` does not exist or you do not have access to it."
            self._send_error(404, message, "invalid_request_error", "model_not_found")
            return
        if behavior.body is not None:
            self._send_raw(200, behavior.body.encode(), behavior.content_type)
            return
        reply = behavior.reply(record.messages) if callable(behavior.reply) else behavior.reply
        if record.stream and behavior.events is not None:
            self._stream_events(behavior.events)
        elif record.stream:
            self._stream_reply(record, behavior, reply)
        else:
            self._send_json(200, _completion(record.model or "", reply))

    # -- streaming ----------------------------------------------------------------------
    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _stream_reply(self, record: RequestRecord, behavior: Behavior, reply: str) -> None:
        self._start_stream()
        model = record.model or ""
        step = max(1, behavior.chunk_chars)
        deltas = [reply[i : i + step] for i in range(0, len(reply), step)]
        self._sse(_chunk(model, {"role": "assistant", "content": ""}, None))
        if not self._pause(behavior.first_token_delay_s, record):
            return
        for index, delta in enumerate(deltas):
            if index == behavior.stall_after:
                self._stall(record)
                return
            if index == behavior.disconnect_after:
                self._drop(record)
                return
            if index == behavior.error_event_after:
                self._sse({"error": {"message": "scripted mid-stream error", "type": "server_error"}})
                self._end_chunks()
                return
            if index and not self._pause(behavior.inter_token_delay_s, record):
                return
            self._sse(_chunk(model, {"content": delta}, None))
            record.deltas_sent = index + 1
        if behavior.stall_after is not None and behavior.stall_after >= len(deltas):
            self._stall(record)
            return
        if behavior.finish_reason is not None:
            self._sse(_chunk(model, {}, behavior.finish_reason))
        if record.include_usage:
            # As OpenAI does: one last chunk without choices; one delta counts as one token.
            self._sse({**_chunk(model, {}, None), "choices": [], "usage": _usage(len(deltas))})
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    def _stream_events(self, events: Sequence[str | bytes]) -> None:
        self._start_stream()
        for event in events:
            data = event.encode() if isinstance(event, str) else event
            self._write_chunk(b"data: " + data + b"\n\n")
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    def _sse(self, payload: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _pause(self, seconds: float, record: RequestRecord) -> bool:
        """Wait `seconds`; False (and the record closed) if the client hung up meanwhile."""
        if seconds <= 0:
            return True
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.server.owner._closing.is_set():
                self._finish_quietly(record, STALLED)
                return False
            if self._client_closed(min(left, 0.05)):
                self._finish_quietly(record, self._hang_up_outcome())
                return False
        return True

    def _stall(self, record: RequestRecord) -> None:
        """Keep the connection open and silent until the client or the server gives up."""
        while not self.server.owner._closing.is_set():
            if self._client_closed(0.05):
                self._finish_quietly(record, self._hang_up_outcome())
                return
        self._finish_quietly(record, STALLED)

    def _hang_up_outcome(self) -> str:
        # close() sets _closing before it shuts sockets down, so an EOF seen after that is ours.
        return STALLED if self.server.owner._closing.is_set() else CLIENT_CLOSED

    def _client_closed(self, wait_s: float) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], wait_s)
            if not readable:
                return False
            data = self.connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            return True
        if data:
            # The client sent something (it should not mid-response): wait by the clock instead.
            time.sleep(wait_s)
            return False
        return True

    def _drop(self, record: RequestRecord) -> None:
        self.server.owner._finish(record, DISCONNECTED)
        self.close_connection = True
        _shutdown_quietly(self.connection)

    def _finish_quietly(self, record: RequestRecord, outcome: str) -> None:
        self.server.owner._finish(record, outcome)
        self.close_connection = True

    # -- plain responses ----------------------------------------------------------------
    def _start_record(self, body: dict[str, Any] | None) -> RequestRecord:
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = RequestRecord(self.command, self.path, headers, body)
        self.server.owner._record(record)
        return record

    def _refuse_key(self, record: RequestRecord) -> bool:
        key = self.server.owner.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return False
        self._send_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        self.server.owner._finish(record, COMPLETED)
        return True

    def _send_error(
        self, status: int, message: str, kind: str, code: str | None, headers: dict[str, str] | None = None
    ) -> None:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send_json(status, body, headers)

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(body).encode(), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the connection was dropped on purpose or by the client


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def chunk_event(content: object = None, finish_reason: str | None = None, model: str = "test-model") -> str:
    """One well-formed (or, with a non-string `content`, malformed) chunk as SSE data."""
    delta = {} if content is None else {"content": content}
    return json.dumps(_chunk(model, delta, finish_reason), ensure_ascii=False)


def _completion(model: str, reply: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        ],
        "usage": _usage(0),
    }


def _usage(completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 0, "completion_tokens": completion_tokens, "total_tokens": completion_tokens}


def _shutdown_quietly(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def echo_reply(messages: list[dict[str, Any]]) -> str:
    """A reply that repeats the last user message; handy for manual `talk` runs."""
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    return f"You said: {last}. Say something else, or press Control C to stop."


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test chat server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", action="append", help="served model id (repeatable); default test-model")
    parser.add_argument("--reply", default=None, help="fixed reply text; default: echo the user")
    parser.add_argument("--chunk-chars", type=int, default=4)
    parser.add_argument("--first-token-ms", type=float, default=200.0)
    parser.add_argument("--inter-token-ms", type=float, default=20.0)
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    behavior = Behavior(
        reply=args.reply if args.reply is not None else echo_reply,
        chunk_chars=args.chunk_chars,
        first_token_delay_s=args.first_token_ms / 1000.0,
        inter_token_delay_s=args.inter_token_ms / 1000.0,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = OpenAITestServer(
        port=args.port, models=args.model or ["test-model"], api_key=args.api_key, default=behavior
    )
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly when killed, as on Ctrl-C
    logger.info("serving %s (models: %s); Ctrl-C stops", server.base_url, ", ".join(server.models))
    server.serve_until_interrupted()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
