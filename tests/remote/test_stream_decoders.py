"""The PCM and SSE decoders on pieces split anywhere: mid-sample, mid-line, mid-event."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from sisyphus.tts.remote_stream import BadStream, PcmDecoder, ServerReported, SseDecoder

SAMPLES = (np.sin(np.arange(999) * 0.1) * 20000).astype("<i2")


def pieces(data: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    out, i, k = [], 0, 0
    while i < len(data):
        out.append(data[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return out


def decode(decoder, chunks: list[bytes]) -> np.ndarray:
    got = [a for c in chunks for a in decoder.push(c)]
    decoder.finish()
    return np.concatenate(got)


@pytest.mark.parametrize("sizes", [(1,), (3, 1, 7), (1997,), (2, 5)])
def test_pcm_split_anywhere_decodes_to_the_same_samples(sizes):
    audio = decode(PcmDecoder(), pieces(SAMPLES.tobytes(), sizes))
    assert np.array_equal(audio, SAMPLES.astype(np.float32) / 32768)


def event(kind: str, **fields) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def sse_body(crlf: bool = False) -> bytes:
    raw = SAMPLES.tobytes()
    body = b": keep-alive\n\n" + b"".join(
        event("speech.audio.delta", audio=base64.b64encode(raw[i : i + 301]).decode(), response_format="pcm")
        for i in range(0, len(raw), 301)
    ) + event("speech.audio.done", usage={"output_tokens": 3})
    return body.replace(b"\n", b"\r\n") if crlf else body


@pytest.mark.parametrize(("sizes", "crlf"), [((1,), False), ((5, 50, 500), True), ((100_000,), False)])
def test_sse_split_anywhere_decodes_to_the_same_samples(sizes, crlf):
    audio = decode(SseDecoder(), pieces(sse_body(crlf), sizes))
    assert np.array_equal(audio, SAMPLES.astype(np.float32) / 32768)


def test_sse_stops_at_done_and_at_done_marker():
    decoder = SseDecoder()
    decoder.push(event("speech.audio.done") + event("speech.audio.delta", audio="AAAA"))
    assert decoder.done
    other = SseDecoder()
    other.push(b"data: [DONE]\n\n")
    assert other.done


def test_sse_error_event_carries_the_server_message():
    error = {"message": "CUDA out of memory", "type": "server_error", "code": 500}
    with pytest.raises(ServerReported, match="CUDA out of memory"):
        SseDecoder().push(event("speech.audio.error", error=error))


@pytest.mark.parametrize(("data", "message"), [
    (b"data: not json\n\n", "not JSON"),
    (b'data: {"type": "speech.audio.delta", "audio": "***"}\n\n', "not base64"),
    (b'data: {"type": "speech.audio.delta"}\n\n', "without base64 audio"),
])
def test_malformed_events_are_bad_streams(data, message):
    with pytest.raises(BadStream, match=message):
        SseDecoder().push(data)


def test_an_event_stream_that_ends_without_done_is_a_bad_stream():
    decoder = SseDecoder()
    decoder.push(event("speech.audio.delta", audio=base64.b64encode(b"\0\0").decode()))
    with pytest.raises(BadStream, match="without speech.audio.done"):
        decoder.finish()
