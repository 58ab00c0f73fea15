"""The stand-in servers refuse what vLLM / vLLM-Omni refuse (they are the tests' contract),
so a request the engines get wrong fails here rather than on a user's GPU box."""

from __future__ import annotations

import base64

import httpx2
import numpy as np
import pytest

from sisyphus.audio.wav import wav_bytes

REF = "data:audio/wav;base64," + base64.b64encode(wav_bytes(np.zeros(48000, np.float32), 24000)).decode()
GOOD = {"input": "Hello.", "response_format": "pcm", "stream_format": "audio"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({**GOOD, "model": "tts-1"}, 404, "The model `tts-1` does not exist."),
        ({"voice": "vivian"}, 400, "Field required: input"),
        ({**GOOD, "input": "  "}, 400, "Input text cannot be empty"),
        ({**GOOD, "voice": "alloy"}, 400, "Invalid voice 'alloy'"),
        ({**GOOD, "language": "klingon"}, 400, "Invalid language 'Klingon'"),
        ({**GOOD, "x_vector_only_mode": False}, 400, "'x_vector_only_mode' is only valid for Base task"),
        ({**GOOD, "ref_text": "hi"}, 400, "does not support task_type='Base'"),
        ({**GOOD, "ref_audio": REF}, 400, "does not support task_type='Base'"),
        ({**GOOD, "task_type": "Base"}, 400, "does not support task_type='Base'"),
        ({**GOOD, "response_format": "mp3"}, 400, "Streaming requires response_format='pcm' or 'wav'."),
        ({**GOOD, "voices": "vivian"}, 400, "Unknown field(s): voices"),
        ({**GOOD, "max_new_tokens": 5000}, 400, "max_new_tokens must be in [1, 4096]"),
        ({**GOOD, "initial_codec_chunk_frames": "2"}, 400, "initial_codec_chunk_frames: Input should be a valid int"),
    ],
)
def test_the_custom_voice_server_refuses_what_vllm_omni_refuses(custom_server, body, status, message):
    answer = httpx2.post(custom_server.base_url + "/audio/speech", json=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**GOOD, "task_type": "Base", "ref_audio": REF}, "requires non-empty 'ref_text'"),
        ({**GOOD, "task_type": "Base"}, "requires 'ref_audio'"),
        ({**GOOD, "task_type": "Base", "ref_audio": "/tmp/me.wav", "ref_text": "hi"}, "ref_audio must be a URL"),
        ({**GOOD, "task_type": "Base", "ref_audio": "data:audio/wav;base64,AAAA", "ref_text": "hi"},
         "could not be decoded"),
        ({**GOOD, "voice": "vivian"}, "does not support task_type='CustomVoice'"),
    ],
)
def test_the_base_server_wants_a_decodable_reference_and_its_text(base_server, body, message):
    answer = httpx2.post(base_server.base_url + "/audio/speech", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"]["message"]


def test_the_base_server_takes_a_reference_with_text_or_x_vector_only(base_server):
    for extra in ({"ref_text": "This is me."}, {"x_vector_only_mode": True}):
        answer = httpx2.post(base_server.base_url + "/audio/speech", json={**GOOD, "task_type": "Base",
                                                                           "ref_audio": REF, **extra})
        assert answer.status_code == 200 and answer.headers["content-type"] == "audio/pcm"


def test_a_json_endpoint_refuses_another_content_type(custom_server):
    answer = httpx2.post(custom_server.base_url + "/audio/speech", content=b"input=hi",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 400 and "Expected application/json" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("data", "files", "message"),
    [
        ({"model": "zai-org/GLM-ASR-Nano-2512"}, {"prompt": (None, b"hi")}, "Field required: file"),
        ({"modle": "x"}, {"file": ("a.wav", wav_bytes(np.zeros(1600, np.float32), 16000), "audio/wav")},
         "Unknown field(s): modle"),
        ({}, {"file": ("a.mp3", b"ID3\x03garbage", "audio/mpeg")}, "Invalid or unsupported audio file"),
    ],
)
def test_the_asr_server_refuses_what_vllm_refuses(asr_server, data, files, message):
    answer = httpx2.post(asr_server.base_url + "/audio/transcriptions", data=data, files=files)
    assert answer.status_code == 400 and message in answer.json()["error"]["message"]


def test_the_asr_server_wants_multipart(asr_server):
    answer = httpx2.post(asr_server.base_url + "/audio/transcriptions", json={"model": "x"})
    assert answer.status_code == 400 and "Expected multipart/form-data" in answer.json()["error"]["message"]


def test_each_server_lists_its_one_model(asr_server, custom_server, base_server):
    for server in (asr_server, custom_server, base_server):
        ids = [m["id"] for m in httpx2.get(server.base_url + "/models").json()["data"]]
        assert ids == [server.model]
