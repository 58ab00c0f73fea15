"""`voices clone` / `say` / `list` with only a remote Base server (the stand-in vLLM-Omni), and a
voice cloned that way later spoken by a local Base model, which computes its prompt once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from sisyphus.bench.speech_server import SpeechBehavior, SpeechTestServer
from sisyphus.bench.speech_rules import SPEAKERS
from sisyphus.tts.qwen3 import ClonePrompt
from tests.voices.helpers import edit_config, library_of, run

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture()
def base_server():
    with SpeechTestServer("base", model="my-base") as server:
        yield server


@pytest.fixture()
def remote_config(config_file: Path, base_server: SpeechTestServer, tmp_path: Path) -> Path:
    """Only the remote Base server: the local Base folder does not exist, the CustomVoice one does."""
    edit_config(config_file, "models.tts_base", "my-base")
    edit_config(config_file, "remote", {"tts_base_url": base_server.base_url})
    edit_config(config_file, "voice.language", "english")
    return config_file


def test_clone_with_only_a_remote_base_server_keeps_the_reference_and_its_text(remote_config, base_server,
                                                                               speech_files):
    result = run(remote_config, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--text", TEXT)

    assert result.exit_code == 0, result.output
    assert f"model my-base at {base_server.base_url} (reference kept; no local prompt)" in result.stdout
    info = library_of(remote_config).get("fox")
    assert (info.transcript, info.model, info.language) == (TEXT, "", "english")
    assert info.reference_path.is_file() and not info.prompt_path.exists()
    assert yaml.safe_load((info.path / "voice.yaml").read_text())["model"] == ""
    assert base_server.work_requests() == []  # connecting checked the model; nothing was spoken

    listed = run(remote_config, "list")
    assert listed.exit_code == 0 and "fox" in listed.stdout and "damaged" not in listed.stderr


def test_clone_transcribe_asks_a_remote_asr_server_for_the_transcript(remote_config, base_server, speech_files):
    with SpeechTestServer("asr", default=SpeechBehavior(text=f" {TEXT} ")) as asr:
        edit_config(remote_config, "remote", {"tts_base_url": base_server.base_url, "asr_url": asr.base_url})
        edit_config(remote_config, "models.asr", asr.model)
        result = run(remote_config, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--transcribe")
        assert result.exit_code == 0, result.output
        (upload,) = asr.work_requests()
    assert f"transcript: {TEXT}" in result.stderr
    assert library_of(remote_config).get("fox").transcript == TEXT
    assert upload.fields["language"] == "en" and upload.upload.rate_hz == 16000
    assert 7.0 < upload.upload.seconds < 7.8  # the checked reference, resampled to 16 kHz


def test_say_sends_the_stored_reference_and_transcript_to_the_base_server(remote_config, base_server, speech_files,
                                                                         tmp_path):
    assert run(remote_config, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--text", TEXT).exit_code == 0
    out = tmp_path / "fox.wav"

    result = run(remote_config, "say", "fox", "Hello from the server.", "--output", str(out))

    assert result.exit_code == 0, result.output
    (record,) = base_server.work_requests()
    body = record.body
    assert (body["task_type"], body["ref_text"], body["x_vector_only_mode"]) == ("Base", TEXT, False)
    assert body["language"] == "English" and body["input"] == "Hello from the server."
    assert "voice" not in body and "instructions" not in body
    stored, rate = sf.read(library_of(remote_config).get("fox").reference_path, dtype="float32")
    assert record.reference.rate_hz == rate == 24000
    assert np.abs(record.reference.samples - stored).max() < 2 / 32767
    played, rate = sf.read(out, dtype="float32")
    sent = np.frombuffer(record.pcm, "<i2").astype(np.float32) / 32768
    assert rate == 24000 and np.abs(played - sent).max() < 2 / 32767


def test_a_preset_voice_has_no_remote_base_to_go_to(remote_config, base_server):
    """Presets need the CustomVoice model; here it is local (tiny), so say runs it in process."""
    result = run(remote_config, "say", "vivian", "Hello.", "--output", str(remote_config.parent / "v.wav"))
    assert result.exit_code == 0, result.output
    assert base_server.work_requests() == []


def test_a_remotely_cloned_voice_gets_its_prompt_from_a_local_base_model_once(remote_config, base_server,
                                                                             speech_files, tiny_base, tmp_path):
    assert run(remote_config, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--text", TEXT).exit_code == 0
    edit_config(remote_config, "models.tts_base", str(tiny_base))
    edit_config(remote_config, "remote", {})

    first = run(remote_config, "say", "fox", "Hello.", "--output", str(tmp_path / "a.wav"))
    second = run(remote_config, "say", "fox", "Hello.", "--output", str(tmp_path / "b.wav"))

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "voice 'fox' was cloned with a remote Base server; computing its clone prompt for" in first.stderr
    assert "clone prompt" not in second.stderr
    info = library_of(remote_config).get("fox")
    prompt = ClonePrompt.load(info.prompt_path)
    assert prompt.ref_text == TEXT and prompt.model_name == info.model and Path(info.model).name == tiny_base.name
    assert base_server.work_requests() == []


def test_voices_list_takes_the_presets_from_a_remote_custom_voice_server(config_file):
    with SpeechTestServer("custom") as custom:
        edit_config(config_file, "remote", {"tts_custom_url": custom.base_url})
        edit_config(config_file, "models.tts_custom", custom.model)
        result = run(config_file, "list", "--json")
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in yaml.safe_load(result.stdout)["voices"]] == list(SPEAKERS)


def test_voices_list_says_why_presets_are_unknown_when_the_server_is_down(config_file):
    with SpeechTestServer("custom") as custom:
        url = custom.base_url
    edit_config(config_file, "remote", {"tts_custom_url": url, "max_retries": 0})
    result = run(config_file, "list")
    assert result.exit_code == 0, result.output
    assert f"preset speakers unknown: the CustomVoice server {url} did not list them" in result.stderr
