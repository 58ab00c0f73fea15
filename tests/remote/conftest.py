"""Stand-in vLLM / vLLM-Omni servers on 127.0.0.1 and endpoints pointing at them."""

from __future__ import annotations

import pytest

from sisyphus.bench.speech_server import SpeechTestServer
from sisyphus.runtime.remote import Endpoint


@pytest.fixture()
def custom_server():
    with SpeechTestServer("custom") as server:
        yield server


@pytest.fixture()
def base_server():
    with SpeechTestServer("base") as server:
        yield server


@pytest.fixture()
def asr_server():
    with SpeechTestServer("asr") as server:
        yield server


def endpoint_of(server: SpeechTestServer, *, model: str | None = None, timeout_s: float = 5.0,
                max_retries: int = 1, api_key: str = "") -> Endpoint:
    key = {"asr": "asr", "custom": "tts_custom", "base": "tts_base"}[server.kind]
    return Endpoint(key, server.base_url, model or server.model, timeout_s, max_retries, api_key)
