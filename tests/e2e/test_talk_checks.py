"""`sisyphus talk` checks what is cheap before any model loads, says each problem once
in one line, and prints every user-facing line in one format. Real CLI in a subprocess,
tiny models, a real OpenAI-style server on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from tests.e2e.harness import REPO, run_talk, talk_command, talk_env, transcript

pytestmark = pytest.mark.slow

LOADED = re.compile(r"loaded (asr|tts_custom|tts_base) in")
PYTHON_LOG = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR)")
PLAIN_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \S")


def errors_of(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if "error" in line.lower()]


def test_an_input_file_with_nan_is_refused_once_before_any_model_loads(tmp_path, config):
    bad = tmp_path / "nan.wav"
    samples = np.zeros(16000, np.float32)
    samples[100] = np.nan
    sf.write(bad, samples, 16000, subtype="FLOAT")
    loud = tmp_path / "loud.wav"
    sf.write(loud, np.full(16000, 1e6, np.float32), 16000, subtype="FLOAT")
    for path, message in [(bad, "contains NaN or infinite samples"), (loud, "holds samples far beyond full scale")]:
        result = run_talk(config(), talk_env(tmp_path), "--input", str(path), "--output", str(tmp_path / "o.wav"))
        assert result.returncode == 1
        assert not LOADED.search(result.stdout), result.stdout
        assert len(errors_of(result)) == 1 and message in errors_of(result)[0], errors_of(result)
        assert "Traceback" not in result.stderr


def test_an_unknown_language_is_refused_before_any_model_loads(tmp_path, config, tiny_tts_custom_folder):
    result = run_talk(config(), talk_env(tmp_path), "--text", "--language", "klingon", "--output", str(tmp_path / "o.wav"))
    assert result.returncode == 2
    assert not LOADED.search(result.stdout)
    assert result.stderr.strip().splitlines() == [
        f"error: voice.language: 'klingon' is not a language of models.tts_custom ({tiny_tts_custom_folder}). "
        "use --language (or voice.language, SISYPHUS_LANGUAGE) with one of: auto, chinese, english, german, "
        "italian, portuguese, spanish, japanese, korean, french, russian"
    ]


def write_voice(library, name: str, prompt: bytes | None = None, embedding: torch.Tensor | None = None):
    """A cloned voice whose stored prompt is `prompt` bytes, or a real prompt file."""
    from sisyphus.tts.qwen3 import ClonePrompt
    from sisyphus.voices.library import VoiceLibrary

    def write(path):
        if prompt is not None:
            path.write_bytes(prompt)
        else:
            ClonePrompt(embedding, None, None, True, "Qwen3-TTS-tiny-Base").save(path)
        return "Qwen3-TTS-tiny-Base"

    tone = (0.1 * np.sin(np.arange(24000 * 4) * 0.05)).astype(np.float32)
    VoiceLibrary(library, []).add(name, tone, None, "auto", write)


def test_a_cloned_voice_with_a_damaged_prompt_is_one_line_at_start(tmp_path, config):
    cfg = config()
    library = tmp_path / "voices"
    good = torch.ones(1024)  # the data, not the header, is cut in half
    write_voice(library, "cut", embedding=good)
    whole = (library / "cut" / "prompt.safetensors").read_bytes()
    (library / "cut" / "prompt.safetensors").write_bytes(whole[: len(whole) // 2])
    write_voice(library, "junk", prompt=b"\x00" * 64)
    write_voice(library, "nans", embedding=torch.full((16,), float("nan")))
    cases = {
        "cut": ("prompt.safetensors is cut short or damaged", False),
        "junk": ("prompt.safetensors is not a safetensors file", False),
        "nans": ("holds damaged values", True),  # only the tensors tell: found at load
    }
    for name, (message, after_load) in cases.items():
        result = run_talk(cfg, talk_env(tmp_path), "--text", "--voice", name, "--output", str(tmp_path / "o.wav"))
        assert result.returncode == 1, result.stdout[-2000:]
        assert bool(LOADED.search(result.stdout)) == after_load, result.stdout
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and f"voice '{name}' is damaged" in errors[0] and message in errors[0], result.stderr
        assert f"sisyphus voices delete {name}" in errors[0]
        assert "Traceback" not in result.stderr


def test_an_unwritable_transcript_folder_names_the_setting_that_chose_it(tmp_path, config):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = talk_env(tmp_path)
    env["SISYPHUS_TRANSCRIPT_DIR"] = str(blocker / "sessions")
    result = run_talk(config(), env, "--text", "--output", str(tmp_path / "o.wav"))
    assert result.returncode == 1
    assert not LOADED.search(result.stdout)
    assert result.stderr.strip().startswith(f"error: cannot write the session transcript in {blocker / 'sessions'}")
    assert "pass --transcript-dir (or set SISYPHUS_TRANSCRIPT_DIR) with a writable folder" in result.stderr
    assert "SISYPHUS_DATA_DIR" not in result.stderr
    env.pop("SISYPHUS_TRANSCRIPT_DIR")
    env["SISYPHUS_DATA_DIR"] = str(blocker / "data")
    result = run_talk(config(), env, "--text", "--output", str(tmp_path / "o.wav"))
    assert result.returncode == 1
    assert "set SISYPHUS_TRANSCRIPT_DIR (or SISYPHUS_DATA_DIR) to a writable folder" in result.stderr


def test_plain_is_one_format_and_says_which_voice_is_really_used(tmp_path, config, server):
    """An unknown default voice, a retried request and the session's own lines: every
    line of stdout is `HH:MM:SS.mmm text`, nothing on stderr, no Python log records."""
    server.script(Behavior(status=503), Behavior(reply="Hello there."))
    env = talk_env(tmp_path)
    env["SISYPHUS_VOICE"] = "nobody"
    result = subprocess.run(
        talk_command(config(), "--text", "--output", str(tmp_path / "o.wav")), env=env, cwd=REPO,
        capture_output=True, text=True, timeout=240, input="hello\n",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert all(PLAIN_LINE.match(line) for line in lines), [line for line in lines if not PLAIN_LINE.match(line)]
    assert not PYTHON_LOG.search(result.stdout + result.stderr)
    assert result.stderr.strip() == ""
    assert "voice: nobody" not in result.stdout
    assert "voice: vivian, language: english" in result.stdout
    assert any(line.endswith("warning: default voice 'nobody' does not exist; using 'vivian'") for line in lines)
    assert any(line.endswith(" voice: vivian") for line in lines)
    retry = [line for line in lines if "LLM request failed" in line]
    assert len(retry) == 1 and " warning: " in retry[0] and "attempt 1/2" in retry[0], lines
    assert any(line.endswith("assistant: Hello there.") for line in lines)
    assert transcript(tmp_path)[0]["voice"] == "vivian"


def test_a_hosted_endpoint_without_a_key_is_said_once_at_start(tmp_path, config):
    env = talk_env(tmp_path)
    env.pop("OPENAI_API_KEY")
    result = subprocess.run(
        talk_command(config(), "--text", "--output", str(tmp_path / "o.wav"), "--llm-url", "https://api.example.com/v1"),
        env=env, cwd=REPO, capture_output=True, text=True, timeout=240, input="",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warned = [line for line in result.stdout.splitlines() if "OPENAI_API_KEY" in line]
    assert len(warned) == 1 and " warning: OPENAI_API_KEY is not set: api.example.com will most likely refuse" in warned[0]
    with OpenAITestServer(models=("test-model",)) as local:  # a local server needs no key: no warning
        result = subprocess.run(
            talk_command(config(), "--text", "--output", str(tmp_path / "o.wav"), "--llm-url", local.base_url),
            env=env, cwd=REPO, capture_output=True, text=True, timeout=240, input="",
        )
    assert result.returncode == 0 and "OPENAI_API_KEY" not in result.stdout


def test_a_reply_cut_off_before_the_llm_answered_says_so(tmp_path, config, server):
    """The LLM is silent on the first question; speaking again cuts that turn off. Its line
    used to be a bare `assistant (interrupted):`, with nothing saying why it was empty."""
    from tests.support.speech import espeak, timeline

    audio, _ = timeline([0.5, espeak("What is the weather like?"), 3.0, espeak("Never mind, tell me a joke."), 3.0])
    sf.write(tmp_path / "in.wav", audio, 16000)
    server.script(Behavior(reply="Too late.", first_token_delay_s=8), Behavior(reply="Here is one."))
    # Turns end on silence alone, no reply prepared ahead: one request per question, in order.
    cfg = config(vad__turn_model="none", vad__preempt_silence_ms=None)
    result = run_talk(cfg, talk_env(tmp_path), "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "o.wav"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    cut = [i for i, line in enumerate(lines) if "was cut off" in line]
    assert len(cut) == 1, result.stdout[-3000:]
    assert lines[cut[0]].endswith("warning: the reply to turn 1 was cut off (barge-in) before the LLM answered")
    assert lines[cut[0] + 1].endswith("assistant (interrupted): (nothing was heard)"), lines[cut[0]:]
    assert any(line.endswith("assistant: Here is one.") for line in lines)
    notices = [r["text"] for r in transcript(tmp_path) if r["type"] == "notice"]
    assert "the reply to turn 1 was cut off (barge-in) before the LLM answered" in notices
