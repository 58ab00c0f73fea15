"""RemoteRecognizer against the stand-in vLLM server: a 16 kHz mono WAV in a multipart form,
the language as vLLM wants it, the transcript back, and one RemoteError line per failure."""

from __future__ import annotations

import numpy as np
import pytest

from sisyphus.asr.remote import RemoteRecognizer, asr_language
from sisyphus.bench.speech_server import SpeechBehavior
from sisyphus.errors import RemoteError
from tests.remote.conftest import endpoint_of


def speech(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.25 * np.sin(2 * np.pi * 220 * t) * np.hanning(t.size)).astype(np.float32)


def recognizer(server, language: str | None = "english", **endpoint: object) -> RemoteRecognizer:
    return RemoteRecognizer(endpoint_of(server, **endpoint), language=language, backoff_s=0.01)


def test_an_utterance_goes_up_as_a_16_khz_wav_with_the_model_and_iso_language(asr_server):
    asr_server.script(SpeechBehavior(text=" What time is it in Paris? "))
    audio = speech()
    assert recognizer(asr_server).transcribe(audio) == "What time is it in Paris?"

    (record,) = asr_server.work_requests()
    assert record.content_type.startswith("multipart/form-data")
    assert record.fields == {"model": "zai-org/GLM-ASR-Nano-2512", "language": "en"}
    assert (record.upload.rate_hz, record.upload.channels) == (16000, 1)
    assert np.abs(record.upload.samples - audio).max() < 2 / 32767


def test_auto_language_lets_the_server_decide(asr_server):
    recognizer(asr_server, language="auto").transcribe(speech())
    assert "language" not in asr_server.work_requests()[0].fields


def test_the_stand_in_refuses_a_language_name_as_vllm_does(asr_server):
    import httpx2

    files = {"file": ("a.wav", b"RIFF", "audio/wav")}
    answer = httpx2.post(asr_server.base_url + "/audio/transcriptions", data={"language": "english"}, files=files)
    assert answer.status_code == 400 and "Unsupported language: 'english'" in answer.json()["error"]["message"]


@pytest.mark.parametrize(("value", "code"), [("english", "en"), ("Chinese", "zh"), ("de", "de"), ("auto", None),
                                             (None, None), ("klingon", None)])
def test_language_names_become_iso_639_1_codes(value, code):
    assert asr_language(value) == code


def test_silence_of_zero_length_is_not_sent(asr_server):
    assert recognizer(asr_server).transcribe(np.zeros(0, np.float32)) == ""
    assert asr_server.work_requests() == []


def test_a_503_is_retried_before_the_answer(asr_server):
    asr_server.script(SpeechBehavior(status=503), SpeechBehavior(text="hello"))
    assert recognizer(asr_server, max_retries=1).transcribe(speech()) == "hello"
    assert [r.status for r in asr_server.work_requests()] == [503, 200]


@pytest.mark.parametrize(
    ("behavior", "options", "message"),
    [
        (SpeechBehavior(), {"model": "whisper-1"},
         "does not serve the model 'whisper-1' (it serves: zai-org/GLM-ASR-Nano-2512)"),
        (SpeechBehavior(status=500), {"max_retries": 0}, "answered HTTP 500: scripted HTTP 500"),
        (SpeechBehavior(stall_after_bytes=0), {"timeout_s": 0.3}, "sent nothing for 0.3 s"),
        (SpeechBehavior(non_audio=True), {}, "answered without a transcript (text/html)"),
    ],
)
def test_failures_are_one_line_errors_naming_the_asr_server(asr_server, behavior, options, message):
    asr_server.script(behavior)
    with pytest.raises(RemoteError) as caught:
        recognizer(asr_server, **options).transcribe(speech())
    assert caught.value.message.startswith(f"ASR server {asr_server.base_url} ")
    assert message in caught.value.message


def test_warmup_checks_that_the_model_is_served(asr_server):
    recognizer(asr_server).warmup()
    with pytest.raises(RemoteError, match="does not serve the model 'other'"):
        recognizer(asr_server, model="other").warmup()
