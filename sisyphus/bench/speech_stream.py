"""How the stand-in speech servers write answers: whole bodies, chunked streams, and faults.

A mixin for the request handler in speech_server.py. Audio goes out in small irregular
pieces (`CHUNK_BYTES`, odd sizes so 16-bit samples split across reads) with chunked
transfer encoding, as a streaming FastAPI response does. While it waits (before the
first byte, between pieces, in a stall) it watches the socket, so the moment a client
hangs up is recorded to within a millisecond: that is what a barge-in benchmark measures.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from sisyphus.bench.llm_server import CLIENT_CLOSED, DISCONNECTED, STALLED, _shutdown_quietly

# Sizes of the pieces audio is written in, cycled.
CHUNK_BYTES = (3841, 1, 2, 961, 5, 1920, 7, 2880)


class StreamingHandler:
    """Writing helpers for a BaseHTTPRequestHandler whose server has an `owner` (SpeechTestServer)."""

    connection: socket.socket
    wfile: Any
    owner: Any
    close_connection: bool

    def _stream(self, record: Any, behavior: Any, content_type: str, frame: Callable[[bytes], bytes],
                trailer: bytes) -> None:
        """Send record.pcm in pieces as a chunked body, applying the behavior's faults."""
        self.send_response(200)  # type: ignore[attr-defined]
        self.send_header("Content-Type", content_type)  # type: ignore[attr-defined]
        self.send_header("Transfer-Encoding", "chunked")  # type: ignore[attr-defined]
        self.end_headers()  # type: ignore[attr-defined]
        record.status = 200
        if not self._pause(behavior.first_byte_delay_s, record):
            return
        pcm, position, index = record.pcm, 0, 0
        limits = [n for n in (behavior.stall_after_bytes, behavior.disconnect_after_bytes,
                              behavior.error_event_after_bytes) if n is not None]
        end = min([len(pcm), *limits])
        while position < end:
            if index and not self._pause(behavior.chunk_delay_s, record):
                return
            if self._client_closed(0.0, record):
                return
            piece = pcm[position : min(end, position + CHUNK_BYTES[index % len(CHUNK_BYTES)])]
            data = frame(piece)
            if record.first_audio_s is None:
                record.first_audio_s = time.perf_counter()  # the moment the first audio byte goes out
            self._write_chunk(data)
            position += len(piece)
            index += 1
            record.bytes_sent = position
        if limits and position >= min(limits):
            self._fault(record, behavior)
            return
        if trailer:
            self._write_chunk(trailer)
        self._end_chunks()

    def _fault(self, record: Any, behavior: Any) -> None:
        at = record.bytes_sent
        if behavior.stall_after_bytes is not None and at >= behavior.stall_after_bytes:
            self._stall(record)
        elif behavior.disconnect_after_bytes is not None and at >= behavior.disconnect_after_bytes:
            self._drop(record)
        else:
            error = {"message": "scripted generation failure", "type": "server_error", "param": None, "code": 500}
            payload = json.dumps({"type": "speech.audio.error", "error": error}).encode()
            self._write_chunk(b"event: speech.audio.error\ndata: " + payload + b"\n\n")
            self._end_chunks()

    # -- waiting and watching ---------------------------------------------------------------
    def _pause(self, seconds: float, record: Any) -> bool:
        """Wait `seconds`; False (and the record closed) if the client hung up or the server closes."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.owner._closing.is_set():
                self._finish_quietly(record, STALLED)
                return False
            if self._client_closed(min(left, 0.05), record):
                return False
        return True

    def _stall(self, record: Any) -> None:
        """Keep the connection open and silent until the client or the server gives up."""
        while not self.owner._closing.is_set():
            if self._client_closed(0.05, record):
                return
        self._finish_quietly(record, STALLED)

    def _client_closed(self, wait_s: float, record: Any) -> bool:
        """Whether the client hung up (noting when); waits up to `wait_s` for it to."""
        try:
            readable, _, _ = select.select([self.connection], [], [], wait_s)
            if not readable:
                return False
            data = self.connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            data = b""
        if data:
            time.sleep(wait_s)  # the client sent something mid-answer: wait by the clock instead
            return False
        record.closed_s = record.closed_s or time.perf_counter()
        outcome = STALLED if self.owner._closing.is_set() else CLIENT_CLOSED
        self._finish_quietly(record, outcome)
        return True

    def _drop(self, record: Any) -> None:
        self.owner._finish(record, DISCONNECTED)
        self.close_connection = True
        _shutdown_quietly(self.connection)

    def _finish_quietly(self, record: Any, outcome: str) -> None:
        self.owner._finish(record, outcome)
        self.close_connection = True

    # -- writing ---------------------------------------------------------------------------
    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_json(self, record: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(record, status, "application/json", json.dumps(body).encode(), headers)

    def _send_bytes(self, record: Any, status: int, content_type: str, data: bytes,
                    headers: dict[str, str] | None = None) -> None:
        record.status = status
        self.send_response(status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", content_type)  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(data)))  # type: ignore[attr-defined]
        for name, value in (headers or {}).items():
            self.send_header(name, value)  # type: ignore[attr-defined]
        self.end_headers()  # type: ignore[attr-defined]
        self.wfile.write(data)
        self.wfile.flush()

    def finish(self) -> None:
        try:
            super().finish()  # type: ignore[misc]
        except OSError:
            pass  # the connection was dropped on purpose or by the client
