"""Qwen3-TTS served by vLLM-Omni, streamed: `POST /v1/audio/speech`, one server per model.

vLLM-Omni runs one model per server, so a session has up to two: the CustomVoice model
speaks preset voices by name (`voice`, `instructions`), the Base model speaks cloned
voices from their reference audio (`task_type: "Base"`, `ref_audio` as a base64 data URL,
`ref_text`, `x_vector_only_mode`). Each server gets only the fields it takes: the
CustomVoice server refuses the clone fields even when they are false. Audio is asked for
as `response_format: "pcm"` (24 kHz 16-bit mono) with `stream_format: "audio"` (raw bytes
as they are decoded) or `"sse"` (base64 events), and yielded as soon as it arrives.
`initial_codec_chunk_frames` carries `tts.first_chunk_frames`, `max_new_tokens` the
length guard, `seed` a fixed `tts.seed`.

Barge-in: the session sets `cancel`; a watcher thread then shuts the socket down at once,
which wakes a read blocked on the network, ends the HTTP stream (vLLM-Omni stops the
request when its client goes) and lets the worker thread return. The watcher starts
when the answer's headers arrive, so it covers the wait for the first audio byte too;
a cancel before the headers takes effect when they come. No torch here.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sisyphus.audio.wav import wav_bytes
from sisyphus.errors import RemoteError, TTSError
from sisyphus.frames import SPEAKER_RATE_HZ
from sisyphus.runtime.remote import Endpoint, HttpClient, OpenStream
from sisyphus.tts.remote_stream import BadStream, PcmDecoder, ServerReported, SseDecoder

log = logging.getLogger(__name__)

FRAME_RATE_HZ = 12.5
MAX_NEW_TOKENS = 4096  # vLLM-Omni's upper bound for max_new_tokens
# How often a watcher re-checks whether its stream already ended (it wakes at once on cancel).
WATCH_POLL_S = 0.25
_ACCEPT = {"audio": ("audio/", "application/octet-stream"), "sse": ("text/event-stream",)}
_REJECTED_HINT = "check the voice, voice.language and voice.instruct against what this server's model takes"


@dataclass(frozen=True)
class CloneReference:
    """A cloned voice as the Base server takes it: the reference audio and what is said in it."""

    name: str
    data_url: str = field(repr=False)  # data:audio/wav;base64,... (24 kHz 16-bit mono WAV)
    text: str | None  # None: clone from the speaker embedding only (x-vector)

    @classmethod
    def from_samples(cls, name: str, samples: np.ndarray, sample_rate_hz: int, text: str | None) -> CloneReference:
        encoded = base64.b64encode(wav_bytes(samples, sample_rate_hz)).decode("ascii")
        return cls(name, "data:audio/wav;base64," + encoded, text or None)


@dataclass(frozen=True)
class RemoteStreamStats:
    """One phrase over HTTP, with the fields the local runtime's StreamStats has."""

    first_audio_s: float  # request sent → first audio yielded
    frames: int  # 80 ms codec frames' worth of audio
    audio_s: float
    wall_s: float
    cancelled: bool
    first_byte_s: float | None = None  # request sent → first bytes of the answer
    graphed: bool = False  # (the local runtime's CUDA graphs: never, here)

    @property
    def real_time_factor(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s > 0 else float("inf")


def tts_language(language: str | None) -> str | None:
    """vLLM-Omni's spelling ("English"); None for auto, which the server assumes."""
    value = (language or "auto").strip()
    return None if value.lower() == "auto" else value.title()


class RemoteSynthesizer:
    """A Qwen3-TTS model on a vLLM-Omni server, with the local runtime's `stream` signature."""

    remote = True
    takes_reference = True  # cloned voices come as CloneReference, not as a local clone prompt
    sample_rate_hz = SPEAKER_RATE_HZ

    def __init__(self, endpoint: Endpoint, *, stream_format: str = "audio", backoff_s: float = 0.25) -> None:
        if endpoint.key not in ("tts_custom", "tts_base"):
            raise ValueError(endpoint.key)
        if stream_format not in _ACCEPT:
            raise ValueError(stream_format)
        self.endpoint = endpoint
        self.stream_format = stream_format
        self.last_stats: RemoteStreamStats | None = None
        self._http = HttpClient(endpoint, backoff_s=backoff_s, rejected_hint=_REJECTED_HINT)
        self._speakers: list[str] | None = None

    @property
    def name(self) -> str:
        return self.endpoint.model

    @property
    def base(self) -> bool:
        return self.endpoint.key == "tts_base"

    @property
    def supports_instruct(self) -> bool:
        return not self.base

    @property
    def speakers(self) -> list[str]:
        """The preset voices the server lists (GET /audio/voices), read once."""
        if self._speakers is None:
            self._speakers = self.list_voices()
        return self._speakers

    def list_voices(self) -> list[str]:
        body = self._http.request("GET", "audio/voices").json()
        voices = body.get("voices") if isinstance(body, dict) else None
        if not isinstance(voices, list):
            raise RemoteError(f"{self.endpoint.where} answered GET /audio/voices without a voice list",
                              f"check that {self.endpoint.url_setting} points at a vLLM-Omni server")
        return [str(v) for v in voices]

    def warmup(self) -> None:
        """Open the connection and check the model is served, so the first reply pays neither."""
        self._http.check_model()

    def close(self) -> None:
        self._http.close()

    # -- speaking -----------------------------------------------------------------------------
    def stream(self, text: str, voice: str | CloneReference, *, language: str | None = None,
               instruct: str | None = None, cancel: threading.Event | None = None, seed: int | None = None,
               first_chunk_frames: int | None = None, max_frames: int | None = None,
               **_local_only: Any) -> Iterator[np.ndarray]:
        """24 kHz float32 chunks as they arrive. The request is checked now, sent on `next()`.

        Options only the local runtime has (chunk_frames, greedy, ...) are ignored: the
        server decides its own chunking after the first one.
        """
        body = self.request_body(text, voice, language=language, instruct=instruct, seed=seed,
                                 first_chunk_frames=first_chunk_frames, max_frames=max_frames)
        self.last_stats = None
        return self._run(body, cancel)

    def synthesize(self, text: str, voice: str | CloneReference, **kwargs: Any) -> np.ndarray:
        """One-shot: the whole utterance as one float32 array at 24 kHz."""
        chunks = list(self.stream(text, voice, **kwargs))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def request_body(self, text: str, voice: str | CloneReference, *, language: str | None = None,
                     instruct: str | None = None, seed: int | None = None, first_chunk_frames: int | None = None,
                     max_frames: int | None = None) -> dict[str, Any]:
        """The JSON this server takes for one phrase, and no field it would refuse."""
        body: dict[str, Any] = {"model": self.endpoint.model, "input": text, "response_format": "pcm",
                                "stream_format": self.stream_format}
        if first_chunk_frames:
            body["initial_codec_chunk_frames"] = int(first_chunk_frames)
        if max_frames:
            body["max_new_tokens"] = max(1, min(int(max_frames), MAX_NEW_TOKENS))
        if seed is not None:
            body["seed"] = int(seed)
        if lang := tts_language(language):
            body["language"] = lang
        if self.base:
            if not isinstance(voice, CloneReference):
                raise TTSError(f"{self.name} speaks cloned voices only, not the preset {voice!r}",
                               "pick a cloned voice, or set remote.tts_custom_url for preset voices")
            body.update(task_type="Base", ref_audio=voice.data_url, x_vector_only_mode=voice.text is None)
            if voice.text:
                body["ref_text"] = voice.text
        else:
            if not isinstance(voice, str):
                raise TTSError(f"{self.name} speaks preset voices only, not a cloned voice",
                               "set remote.tts_base_url (or models.tts_base) for cloned voices")
            body["voice"] = voice
            if instruct:
                body["instructions"] = instruct
        return body

    def _run(self, body: dict[str, Any], cancel: threading.Event | None) -> Iterator[np.ndarray]:
        started = time.perf_counter()
        if not str(body["input"]).strip():
            self.last_stats = RemoteStreamStats(0.0, 0, 0.0, 0.0, False)
            return
        finished = threading.Event()

        def watch(response: Any) -> None:  # from the headers on: the wait for the first byte too
            if cancel is not None:
                threading.Thread(target=_watch, args=(cancel, finished, response), name="sisyphus-tts-cancel",
                                 daemon=True).start()

        try:
            opened = self._http.open_stream("audio/speech", json_body=body, accept=_ACCEPT[self.stream_format],
                                            cancel=cancel, on_headers=watch)
        except BaseException:
            finished.set()
            raise
        if opened is None:  # cancelled before the answer began
            finished.set()
            self.last_stats = RemoteStreamStats(0.0, 0, 0.0, time.perf_counter() - started, True)
            return
        first_byte_s = time.perf_counter() - started
        decoder = SseDecoder() if self.stream_format == "sse" else PcmDecoder()
        first_at, samples, cancelled = None, 0, False
        try:
            for audio in self._decoded(opened, decoder, cancel):
                first_at = first_at or time.perf_counter()
                samples += audio.size
                yield audio
            cancelled = cancel is not None and cancel.is_set()
        except _Cancelled:
            cancelled = True
        finally:
            finished.set()
            cancelled = cancelled or (cancel is not None and cancel.is_set())
            opened.close()
            wall = time.perf_counter() - started
            audio_s = samples / SPEAKER_RATE_HZ
            self.last_stats = RemoteStreamStats((first_at or time.perf_counter()) - started,
                                                round(audio_s * FRAME_RATE_HZ), audio_s, wall, cancelled, first_byte_s)

    def _decoded(self, opened: OpenStream, decoder: PcmDecoder | SseDecoder,
                 cancel: threading.Event | None) -> Iterator[np.ndarray]:
        """Decoded chunks; network and format failures become RemoteErrors (or _Cancelled)."""
        import httpx2

        ep = self.endpoint
        try:
            for piece in opened.chunks():
                if cancel is not None and cancel.is_set():
                    raise _Cancelled
                if decoder.done:
                    continue  # read on to the body's end, so the connection is reused for the next phrase
                for audio in decoder.push(piece):
                    if audio.size:
                        yield audio
            decoder.finish()
        except httpx2.TimeoutException as exc:
            if cancel is not None and cancel.is_set():
                raise _Cancelled from None
            raise self._http.stalled() from exc
        except httpx2.HTTPError as exc:
            if cancel is not None and cancel.is_set():
                raise _Cancelled from None
            raise self._http.broke_off() from exc
        except ServerReported as exc:
            raise RemoteError(f"{ep.where} reported an error mid-stream: {exc}",
                              "check the server's log; the next phrase tries again") from None
        except BadStream as exc:
            if cancel is not None and cancel.is_set():
                raise _Cancelled from None
            raise RemoteError(f"{ep.where} sent a malformed {self.stream_format} stream: {exc}",
                              "check that the server is vLLM-Omni, or set remote.tts_stream_format") from None

    # -- sisyphus doctor ------------------------------------------------------------------------
    def check(self, reference: CloneReference | None = None) -> str:
        """The model is served and a tiny request streams audio back; returns a summary."""
        self._http.check_model()
        voice: str | CloneReference
        if self.base:
            if reference is None:
                raise ValueError("a Base server needs a reference to check")
            voice = reference
        else:
            voice = self.speakers[0] if self.speakers else "vivian"
        audio = self.synthesize("Hello.", voice, max_frames=25)
        stats = self.last_stats
        assert stats is not None
        return (f"serves {self.endpoint.model}; first audio after {stats.first_audio_s * 1000:.0f} ms over HTTP, "
                f"{audio.size / SPEAKER_RATE_HZ:.2f} s of audio for 'Hello.'")


class _Cancelled(Exception):
    """The stream ended because the session cancelled it (barge-in): not an error."""


def _watch(cancel: threading.Event, finished: threading.Event, response: Any) -> None:
    """Shut the stream's socket down as soon as `cancel` is set, unless it already ended."""
    while not finished.is_set():
        if cancel.wait(WATCH_POLL_S):
            if not finished.is_set():
                _shutdown(response)
            return


def _shutdown(response: Any) -> None:
    """Wake a read blocked on this response's socket and end the HTTP stream (FIN to the server)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the other side
