"""The CLI as a user meets it: help for every command, and one clear line per bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from sisyphus.cli import app
from tests.e2e.harness import REPO, talk_env, write_config

runner = CliRunner()


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def test_every_command_has_help():
    commands = [[], ["talk"], ["devices"], ["doctor"], ["models"], ["models", "pull"], ["models", "list"],
                ["voices"], ["voices", "clone"], ["voices", "list"], ["voices", "delete"], ["voices", "say"],
                ["bench"], ["bench", "vad"]]  # fmt: skip
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


@pytest.fixture()
def talk_config(tmp_path, tiny_tts_custom_folder, tiny_tts_base_folder, tiny_glmasr_folder):
    return write_config(
        tmp_path, asr=tiny_glmasr_folder, tts_custom=tiny_tts_custom_folder, tts_base=tiny_tts_base_folder,
        llm_url="http://127.0.0.1:9/v1",
    )


def bad_input_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("this is not audio\n" * 20)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    silent_header = tmp_path / "zero.wav"
    sf.write(silent_header, np.zeros(0, np.float32), 16000)
    return {
        "missing": (tmp_path / "nope.wav", "does not exist"),
        "empty": (empty, "is empty (0 bytes)"),
        "text": (text, "is not an audio file libsndfile can read"),
        "corrupt": (corrupt, "is not an audio file libsndfile can read"),
        "no samples": (silent_header, "holds no samples"),
    }


def test_bad_input_files_are_one_line_errors(tmp_path, talk_config):
    for name, (path, message) in bad_input_files(tmp_path).items():
        result = runner.invoke(app, ["talk", "--config", str(talk_config), "--input", str(path), "--output", str(tmp_path / "o.wav")])
        assert result.exit_code == 1, (name, result.output)
        lines = error_lines(result)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (name, lines)


def test_config_errors_list_each_field(tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text("vad:\n  threshold: 1.5\nmemory: lots\n")
    result = runner.invoke(app, ["talk", "--config", str(bad), "--text"])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert lines[0].startswith("error: invalid configuration")
    assert sorted(lines[1:]) == sorted([
        "  • memory: must be one of 'resident', 'lazy-tts', 'swap', got 'lots'",
        "  • vad.threshold: must be in (0, 1), got 1.5",
    ])


def test_text_and_input_together_are_refused(tmp_path, talk_config):
    result = runner.invoke(app, ["talk", "--config", str(talk_config), "--text", "--input", "x.wav"])
    assert result.exit_code == 2
    assert error_lines(result) == ["error: --text and --input cannot be used together. choose typing or an audio file"]


def test_a_model_folder_without_weights_is_refused_before_loading(tmp_path, tiny_tts_custom_folder, tiny_glmasr_folder):
    hollow = tmp_path / "hollow-tts"
    hollow.mkdir()
    for name in ("config.json", "generation_config.json"):
        (hollow / name).write_bytes((tiny_tts_custom_folder / name).read_bytes())
    config = write_config(tmp_path, asr=tiny_glmasr_folder, tts_custom=hollow, tts_base=hollow, llm_url="http://127.0.0.1:9/v1")
    result = runner.invoke(app, ["talk", "--config", str(config), "--text", "--output", str(tmp_path / "o.wav")])
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and str(hollow) in lines[0], lines


def test_a_model_not_downloaded_names_models_pull(tmp_path, tiny_glmasr_folder, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = write_config(
        tmp_path, asr=tiny_glmasr_folder, tts_custom="Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice",
        tts_base="Qwen/Qwen3-TTS-12Hz-1.7B-Base", llm_url="http://127.0.0.1:9/v1",
    )
    result = runner.invoke(app, ["talk", "--config", str(config), "--text", "--output", str(tmp_path / "o.wav")])
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "sisyphus models pull" in lines[0], lines


def test_no_audio_device_is_one_line(tmp_path, talk_config):
    # No sound server runs for this subprocess: PortAudio finds no device at all.
    env = talk_env(tmp_path)
    env.update(PULSE_SERVER="unix:/nonexistent", XDG_RUNTIME_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "sisyphus.cli", "talk", "--config", str(talk_config), "--plain"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "audio input device" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_typed_turns_are_spoken_into_the_output_file(tmp_path, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder):
    from sisyphus.bench.llm_server import Behavior, OpenAITestServer

    with OpenAITestServer(models=("test-model",)) as server:
        server.script(Behavior(reply="Hi there."), Behavior(reply="Goodbye now."))
        config = write_config(
            tmp_path, asr=tiny_glmasr_folder, tts_custom=tiny_tts_custom_folder, tts_base=tiny_tts_base_folder,
            llm_url=server.base_url,
        )
        result = subprocess.run(
            [sys.executable, "-m", "sisyphus.cli", "talk", "--config", str(config), "--text", "--plain",
             "--output", str(tmp_path / "out.wav")],
            env=talk_env(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=180,
            input="hello\n/voice ryan\nhow are you\n",
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r.messages[-1]["content"] for r in server.chat_requests] == ["hello", "how are you"]
    played, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 24000 and np.abs(played).max() > 1e-3
    assert "ryan" in result.stdout


def test_doctor_says_what_works_and_how_to_fix_what_does_not(tmp_path, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder):
    from sisyphus.bench.llm_server import OpenAITestServer

    with OpenAITestServer(models=("test-model",)) as server:
        config = write_config(
            tmp_path, asr=tiny_glmasr_folder, tts_custom=tiny_tts_custom_folder, tts_base=tmp_path / "missing-base",
            llm_url=server.base_url,
        )
        result = subprocess.run(
            [sys.executable, "-m", "sisyphus.cli", "doctor", "--config", str(config)],
            env={**talk_env(tmp_path), "PULSE_SERVER": "unix:/nonexistent", "COLUMNS": "200"},
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )
    out = result.stdout
    assert result.returncode == 1, out
    assert "✓ model asr" in out and "✓ model tts-custom" in out
    assert "✗ model tts-base" in out and "missing-base does not exist" in out
    assert "✓ LLM endpoint" in out and "test-model" in out
    assert "✗ audio input: no audio input device found" in out
    assert "→ connect one, or use --input FILE" in out
    assert "CUDA" in out
    assert out.strip().splitlines()[-1].endswith("failed")


def test_bench_vad_reports_the_cost_per_frame():
    result = runner.invoke(app, ["bench", "vad", "--seconds", "2"])
    assert result.exit_code == 0, result.output
    assert "median" in result.output and "per frame" in result.output
