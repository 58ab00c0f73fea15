"""RemoteSynthesizer against the stand-in vLLM-Omni server: the fields each server gets, the
audio that comes back (bit for bit, raw and SSE), and one RemoteError line per failure."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sisyphus.bench.speech_server import CLIENT_CLOSED, SpeechBehavior, SpeechTestServer
from sisyphus.errors import RemoteError, TTSError
from sisyphus.tts.remote import CloneReference, RemoteSynthesizer
from tests.remote.conftest import endpoint_of


def engine(server: SpeechTestServer, stream_format: str = "audio", **endpoint: object) -> RemoteSynthesizer:
    return RemoteSynthesizer(endpoint_of(server, **endpoint), stream_format=stream_format, backoff_s=0.01)


def pcm_of(record) -> np.ndarray:
    return np.frombuffer(record.pcm, "<i2").astype(np.float32) / 32768


def reference(seconds: float = 2.0, text: str | None = "This is my voice.") -> tuple[np.ndarray, CloneReference]:
    samples = (0.2 * np.sin(np.arange(int(24000 * seconds)) * 0.05)).astype(np.float32)
    return samples, CloneReference.from_samples("me", samples, 24000, text)


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
def test_a_preset_phrase_sends_the_custom_voice_fields_and_plays_the_streamed_audio_bit_for_bit(
    custom_server, stream_format
):
    tts = engine(custom_server, stream_format)
    chunks = list(tts.stream("Hello there, how are you today?", "vivian", language="english",
                             instruct="Speak warmly.", seed=7, first_chunk_frames=2, chunk_frames=4, max_frames=500))

    (record,) = custom_server.work_requests()
    assert record.content_type == "application/json"
    assert record.body == {
        "model": "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", "input": "Hello there, how are you today?",
        "voice": "vivian", "language": "English", "instructions": "Speak warmly.", "response_format": "pcm",
        "stream_format": stream_format, "initial_codec_chunk_frames": 2, "max_new_tokens": 500, "seed": 7,
    }
    assert len(chunks) > 10  # played as it arrived, in the server's irregular pieces
    assert np.array_equal(np.concatenate(chunks), pcm_of(record))
    assert tts.last_stats.audio_s == pytest.approx(len(record.pcm) / 2 / 24000)
    assert not tts.last_stats.cancelled


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
def test_phrases_reuse_one_connection(custom_server, stream_format):
    tts = engine(custom_server, stream_format)
    tts.warmup()
    for text in ("One.", "Two.", "Three."):
        tts.synthesize(text, "vivian")
    assert len({r.client_port for r in custom_server.requests}) == 1


def test_auto_language_and_no_instruct_send_neither_field(custom_server):
    engine(custom_server).synthesize("Hi.", "ryan", language="auto")
    body = custom_server.work_requests()[0].body
    assert "language" not in body and "instructions" not in body and "seed" not in body
    assert body["voice"] == "ryan"


def test_a_cloned_voice_goes_to_the_base_server_with_its_reference_audio_and_text(base_server):
    samples, ref = reference()
    audio = engine(base_server).synthesize("Nice to meet you.", ref, language="english", max_frames=100)

    (record,) = base_server.work_requests()
    body = dict(record.body)
    assert body.pop("ref_audio").startswith("data:audio/wav;base64,")
    assert body == {
        "model": "Qwen/Qwen3-TTS-12Hz-1.7B-Base", "input": "Nice to meet you.", "task_type": "Base",
        "ref_text": "This is my voice.", "x_vector_only_mode": False, "language": "English",
        "response_format": "pcm", "stream_format": "audio", "max_new_tokens": 100,
    }
    assert record.reference.rate_hz == 24000 and record.reference.channels == 1
    assert np.abs(record.reference.samples - samples).max() < 2 / 32767  # 16-bit WAV of the stored reference
    assert np.array_equal(audio, pcm_of(record))


def test_a_voice_cloned_without_a_transcript_is_sent_as_x_vector_only(base_server):
    _, ref = reference(text=None)
    engine(base_server).synthesize("Hello.", ref)
    body = base_server.work_requests()[0].body
    assert body["x_vector_only_mode"] is True and "ref_text" not in body


def test_each_server_is_refused_the_other_kind_of_voice_before_any_request(custom_server, base_server):
    _, ref = reference()
    with pytest.raises(TTSError, match="speaks preset voices only"):
        engine(custom_server).stream("Hello.", ref)
    with pytest.raises(TTSError, match="speaks cloned voices only"):
        engine(base_server).stream("Hello.", "vivian")
    assert custom_server.work_requests() == [] and base_server.work_requests() == []


def test_the_preset_speakers_come_from_the_server(custom_server):
    assert engine(custom_server).speakers == ["aiden", "dylan", "eric", "ono_anna", "ryan", "serena", "sohee",
                                              "uncle_fu", "vivian"]


def test_a_500_before_the_first_byte_is_retried_and_the_phrase_still_plays(custom_server):
    custom_server.script(SpeechBehavior(status=500))
    audio = engine(custom_server, max_retries=1).synthesize("Hello.", "vivian")
    first, second = custom_server.work_requests()
    assert (first.status, second.status) == (500, 200)
    assert np.array_equal(audio, pcm_of(second))


def test_a_connection_dropped_before_the_first_byte_is_retried(custom_server):
    custom_server.script(SpeechBehavior(drop_connection=True))
    audio = engine(custom_server, max_retries=1).synthesize("Hello.", "vivian")
    assert len(custom_server.work_requests()) == 2 and audio.size > 0


@pytest.mark.parametrize(
    ("behavior", "options", "message"),
    [
        (SpeechBehavior(status=500), {"max_retries": 0}, "answered HTTP 500: scripted HTTP 500"),
        (SpeechBehavior(status=503), {"max_retries": 1}, "answered HTTP 503 (2 attempts): scripted HTTP 503"),
        (SpeechBehavior(), {"model": "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"},
         "does not serve the model 'Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice' (it serves: "
         "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice)"),
        (SpeechBehavior(non_audio=True), {}, "answered with text/html: <html><body>502 Bad Gateway (proxy)"),
        (SpeechBehavior(stall_after_bytes=0), {"timeout_s": 0.3}, "sent nothing for 0.3 s"),
    ],
)
def test_failures_before_any_audio_are_one_line_errors_naming_the_server(custom_server, behavior, options, message):
    custom_server.script(behavior, behavior)
    tts = engine(custom_server, **options)
    with pytest.raises(RemoteError) as caught:
        tts.synthesize("Hello.", "vivian")
    line = caught.value.one_line()
    assert line.startswith(f"TTS server (CustomVoice) {custom_server.base_url} ")
    assert message in line and "\n" not in line


def test_a_refused_request_carries_the_servers_own_message(custom_server):
    with pytest.raises(RemoteError) as caught:
        engine(custom_server).synthesize("Hello.", "vivian", language="klingon")
    assert caught.value.message == (f"TTS server (CustomVoice) {custom_server.base_url} rejected the request "
                                     "(HTTP 400): Invalid language 'Klingon'. Supported: Auto, Chinese, English, "
                                     "French, German, Italian, Japanese, Korean, Portuguese, Russian, Spanish")
    assert "voice.language" in caught.value.hint


def test_a_server_that_is_down_is_unreachable_with_the_setting_to_fix(custom_server):
    url = custom_server.base_url
    custom_server.close()
    tts = engine(custom_server, max_retries=1)
    with pytest.raises(RemoteError) as caught:
        tts.synthesize("Hello.", "vivian")
    assert f"TTS server (CustomVoice) {url} is unreachable (2 attempts)" in caught.value.message
    assert "SISYPHUS_TTS_CUSTOM_URL" in caught.value.hint


def test_a_server_without_a_model_list_is_still_used_and_a_wrong_name_fails_at_the_first_phrase():
    with SpeechTestServer("custom", list_models=False) as server:
        tts = engine(server)
        tts.warmup()
        assert tts.synthesize("Hello.", "vivian").size > 0
        wrong = engine(server, model="other")
        wrong.warmup()
        with pytest.raises(RemoteError, match=r"does not serve the model 'other'$"):
            wrong.synthesize("Hello.", "vivian")


def test_a_missing_api_key_and_a_wrong_one_say_which_variable_to_set():
    with SpeechTestServer("custom", api_key="secret") as server:
        with pytest.raises(RemoteError, match="requires an API key") as caught:
            engine(server).synthesize("Hello.", "vivian")
        assert caught.value.hint == "set SISYPHUS_TTS_CUSTOM_API_KEY"
        with pytest.raises(RemoteError, match="refused the API key"):
            engine(server, api_key="wrong").synthesize("Hello.", "vivian")
        assert engine(server, api_key="secret").synthesize("Hello.", "vivian").size > 0
        assert server.work_requests()[-1].headers["authorization"] == "Bearer secret"


@pytest.mark.parametrize(
    ("stream_format", "behavior", "message"),
    [
        ("audio", SpeechBehavior(stall_after_bytes=10_000), "stalled: nothing more arrived for 0.4 s"),
        ("audio", SpeechBehavior(disconnect_after_bytes=10_000), "broke the connection off mid-answer"),
        ("sse", SpeechBehavior(disconnect_after_bytes=10_000), "broke the connection off mid-answer"),
        ("sse", SpeechBehavior(error_event_after_bytes=10_000),
         "reported an error mid-stream: scripted generation failure"),
    ],
)
def test_a_stream_that_fails_midway_keeps_the_audio_already_played_then_raises(
    custom_server, stream_format, behavior, message
):
    custom_server.script(behavior)
    played: list[np.ndarray] = []
    with pytest.raises(RemoteError) as caught:
        for chunk in engine(custom_server, stream_format, timeout_s=0.4).stream("A long phrase. " * 5, "vivian"):
            played.append(chunk)
    assert message in caught.value.message
    assert sum(c.size for c in played) == 5000  # 10 000 bytes of 16-bit samples arrived before the failure
    assert len(custom_server.work_requests()) == 1  # audio had started: never retried


def test_barge_in_closes_the_http_stream_while_a_read_waits_on_the_network(custom_server):
    custom_server.script(SpeechBehavior(audio_s=10.0, chunk_delay_s=0.2))
    cancel = threading.Event()
    chunks = engine(custom_server).stream("Tell me a long story.", "vivian", cancel=cancel)
    first = next(chunks)
    done = threading.Event()
    rest: list[np.ndarray] = []

    def drain() -> None:  # the TTS worker thread, blocked on the next piece
        rest.extend(chunks)
        done.set()

    worker = threading.Thread(target=drain, daemon=True)
    worker.start()
    cancel.set()
    assert done.wait(5.0), "the blocked read did not return after cancel"
    (record,) = custom_server.wait_for(1)
    assert record.outcome == CLIENT_CLOSED and record.closed_s is not None
    assert record.bytes_sent < len(record.pcm) // 2
    assert first.size > 0 and sum(c.size for c in rest) < 1000  # at most a piece already on its way
    assert engine(custom_server).synthesize("Hi.", "vivian").size > 0  # the server serves on


def test_barge_in_while_waiting_for_the_first_audio_byte_closes_the_stream_too(custom_server):
    custom_server.script(SpeechBehavior(first_byte_delay_s=30.0))
    cancel = threading.Event()
    chunks = engine(custom_server).stream("Hello.", "vivian", cancel=cancel)
    got: list[np.ndarray] = []
    done = threading.Event()
    worker = threading.Thread(target=lambda: (got.extend(chunks), done.set()), daemon=True)
    worker.start()
    assert custom_server.wait_for(1, finished=False)  # the request is in; its headers follow at once
    cancel.set()
    assert done.wait(5.0), "the wait for the first byte did not end after cancel"
    (record,) = custom_server.wait_for(1)
    assert got == [] and record.outcome == CLIENT_CLOSED and record.bytes_sent == 0


def test_a_phrase_cancelled_before_it_is_sent_sends_nothing(custom_server):
    cancel = threading.Event()
    cancel.set()
    assert list(engine(custom_server).stream("Hello.", "vivian", cancel=cancel)) == []
    assert custom_server.work_requests() == []


def test_empty_text_is_not_sent(custom_server):
    assert list(engine(custom_server).stream("   ", "vivian")) == []
    assert custom_server.work_requests() == []
