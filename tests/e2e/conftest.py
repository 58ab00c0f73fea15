"""Fixtures the end-to-end talk tests share: the OpenAI stand-in server and a config writer."""

from __future__ import annotations

import pytest

from sisyphus.bench.llm_server import OpenAITestServer
from tests.e2e.harness import write_config


@pytest.fixture()
def server():
    with OpenAITestServer(models=("test-model",)) as srv:
        yield srv


@pytest.fixture()
def config(tmp_path, server, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder):
    """make(**extra) -> a models.yaml for the tiny models and `server` (or `llm_url`)."""

    def make(llm_url: str | None = None, **extra):
        return write_config(
            tmp_path, asr=tiny_glmasr_folder, tts_custom=tiny_tts_custom_folder,
            tts_base=tiny_tts_base_folder, llm_url=llm_url or server.base_url, **extra,
        )

    return make
