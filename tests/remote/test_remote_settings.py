"""Choosing remote servers (environment, models.yaml, refused secrets and URLs), `sisyphus doctor`
on each remote server, `sisyphus bench asr tts` over HTTP, and the deferred LLM client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sisyphus.agent.build import DeferredChat, all_remote
from sisyphus.agent.doctor import run_doctor
from sisyphus.bench.llm_server import CLIENT_CLOSED, Behavior, OpenAITestServer
from sisyphus.bench.speech_server import SpeechTestServer
from sisyphus.config import LlmConfig, load_config
from sisyphus.errors import ConfigError
from sisyphus.runtime.remote import remote_endpoint, remote_keys

REPO = Path(__file__).resolve().parents[2]


def test_environment_variables_choose_the_servers_and_their_keys():
    env = {"SISYPHUS_ASR_URL": "http://gpu-box:8000/v1/", "SISYPHUS_TTS_CUSTOM_URL": "http://gpu-box:8091/v1",
           "SISYPHUS_TTS_BASE_URL": "https://gpu-box:8092/v1", "SISYPHUS_ASR_API_KEY": "sk-asr-secret",
           "SISYPHUS_TTS_CUSTOM_API_KEY": "c", "SISYPHUS_TTS_BASE_API_KEY": "b"}
    config = load_config(None, env=env)
    assert remote_keys(config) == {"asr", "tts_custom", "tts_base"}
    asr = remote_endpoint(config, "asr")
    assert (asr.base_url, asr.model, asr.api_key) == ("http://gpu-box:8000/v1", "zai-org/GLM-ASR-Nano-2512",
                                                      "sk-asr-secret")
    assert remote_endpoint(config, "tts_base").api_key == "b"
    assert "sk-asr-secret" not in repr(asr) + repr(config) and all_remote(config, with_asr=True)


def test_only_a_remote_tts_is_not_the_light_path(tmp_path):
    config = load_config(None, env={"SISYPHUS_TTS_CUSTOM_URL": "http://x/v1", "SISYPHUS_TTS_BASE_URL": "http://y/v1"})
    assert remote_keys(config) == {"tts_custom", "tts_base"}
    assert all_remote(config, with_asr=False) and not all_remote(config, with_asr=True)
    assert remote_endpoint(config, "asr") is None


def test_models_yaml_sets_the_servers_but_never_their_keys(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("remote:\n  tts_custom_url: http://gpu-box:8091/v1\n  tts_stream_format: sse\n  timeout_s: 3\n")
    config = load_config(path, env={})
    assert (config.remote.tts_custom_url, config.remote.tts_stream_format, config.remote.timeout_s) == (
        "http://gpu-box:8091/v1", "sse", 3.0)
    path.write_text("remote:\n  asr_api_key: secret\n  tts_stream_format: ogg\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = caught.value.message
    assert "remote.asr_api_key: secrets are not read from YAML, set SISYPHUS_ASR_API_KEY instead" in message
    assert "remote.tts_stream_format: must be one of 'audio', 'sse', got 'ogg'" in message


def test_a_url_without_a_scheme_is_a_config_error_naming_the_variable():
    config = load_config(None, env={"SISYPHUS_ASR_URL": "gpu-box:8000/v1"})
    with pytest.raises(ConfigError) as caught:
        remote_endpoint(config, "asr")
    assert "remote.asr_url must be an http:// or https:// URL, got 'gpu-box:8000/v1'" in caught.value.message
    assert "SISYPHUS_ASR_URL" in caught.value.hint


def test_doctor_checks_each_remote_server_with_a_tiny_request(tmp_path, monkeypatch):
    with (SpeechTestServer("asr") as asr, SpeechTestServer("custom") as custom,
          SpeechTestServer("base", model="my-base") as base):
        env = {"SISYPHUS_ASR_URL": asr.base_url, "SISYPHUS_TTS_CUSTOM_URL": custom.base_url,
               "SISYPHUS_TTS_BASE_URL": base.base_url, "SISYPHUS_LLM_MODEL": "x",
               "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
        config = load_config(None, env=env)
        console = Console(record=True, width=300)
        assert run_doctor(config, console) == 1  # the LLM and the Base model name are wrong
        out = console.export_text()
        assert f"✓ remote asr: {asr.base_url}: serves zai-org/GLM-ASR-Nano-2512; transcribed 2." in out
        assert (f"✓ remote tts-custom: {custom.base_url}: serves Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice; "
                "first audio") in out
        assert (f"✗ remote tts-base: TTS server (Base) {base.base_url} does not serve the model "
                "'Qwen/Qwen3-TTS-12Hz-1.7B-Base' (it serves: my-base)") in out
        assert "→ set models.tts_base to the name the server was started with" in out
        assert "✓ model asr: zai-org/GLM-ASR-Nano-2512: served by" in out
        assert [r.body["input"] for r in custom.work_requests()] == ["Hello."]
        assert asr.work_requests()[0].upload.seconds > 2


def test_bench_measures_remote_asr_and_tts_over_http(tmp_path):
    with (SpeechTestServer("asr") as asr, SpeechTestServer("custom") as custom,
          SpeechTestServer("base") as base):
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", SISYPHUS_ASR_URL=asr.base_url,
                   SISYPHUS_TTS_CUSTOM_URL=custom.base_url, SISYPHUS_TTS_BASE_URL=base.base_url, HF_HUB_OFFLINE="1")
        env.pop("SISYPHUS_CONFIG", None)
        out = tmp_path / "bench.json"
        done = subprocess.run([sys.executable, "-m", "sisyphus.cli", "bench", "asr", "tts", "--repeats", "2",
                               "--warmup", "0", "--device", "cpu", "--json", str(out)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    names = [(f["stage"], f["name"]) for f in report["figures"]]
    assert names[:10] == [("asr", f"{s} s utterance") for s in (2, 5, 10, 20)] + [
        ("tts", f"{figure} ({voice})") for voice in ("preset", "cloned")
        for figure in ("first audio", "audible first audio", "real-time factor")]
    assert all(len(f["values"]) == 2 and min(f["values"]) > 0 for f in report["figures"][:10])
    assert report["environment"]["remote"] == {"asr": asr.base_url, "tts_custom": custom.base_url,
                                               "tts_base": base.base_url}
    assert any(n["stage"] == "tts" and "served by" in n["text"] for n in report["notes"])
    assert len(asr.work_requests()) == 8 and len(custom.work_requests()) == 2 and len(base.work_requests()) == 2


def test_random_weights_refuse_remote_servers(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), SISYPHUS_ASR_URL="http://127.0.0.1:9/v1")
    env.pop("SISYPHUS_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "sisyphus.cli", "bench", "asr", "--random-weights"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert "--random-weights measures models in this process, but remote servers are configured (asr)" in done.stderr


def test_the_deferred_llm_client_streams_and_closes_an_abandoned_reply():
    async def first_delta(client: DeferredChat) -> str:
        async with contextlib.aclosing(client.stream([{"role": "user", "content": "hi"}])) as deltas:
            async for delta in deltas:
                return delta
        return ""

    with OpenAITestServer(models=("m",), default=Behavior(reply="Hello there, friend.", inter_token_delay_s=0.2)) as s:
        client = DeferredChat(LlmConfig(base_url=s.base_url, model="m", api_key="k"))
        assert asyncio.run(first_delta(client)) == "Hell"
        (record,) = s.wait_for_requests(1)
    assert record.outcome == CLIENT_CLOSED


def test_talk_with_a_server_down_at_start_is_one_error_line(tmp_path):
    with SpeechTestServer("custom") as custom:
        url = custom.base_url  # closed when the block ends: nothing listens there any more
    env = dict(os.environ, PYTHONPATH=str(REPO), SISYPHUS_TTS_CUSTOM_URL=url, SISYPHUS_TTS_BASE_URL=url,
               SISYPHUS_TRANSCRIPT_DIR=str(tmp_path), SISYPHUS_VOICES_DIR=str(tmp_path / "voices"), HF_HUB_OFFLINE="1")
    env.pop("SISYPHUS_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "sisyphus.cli", "talk", "--text", "--plain", "--output",
                           str(tmp_path / "out.wav")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120, input="hello\n")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: TTS server (CustomVoice) {url} is unreachable (2 attempts): [Errno 111] Connection "
                      "refused. start the vLLM-Omni server (README: Scale out) or fix SISYPHUS_TTS_CUSTOM_URL / "
                      "remote.tts_custom_url"], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
