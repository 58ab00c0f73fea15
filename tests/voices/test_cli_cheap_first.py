"""The voice commands refuse what is cheap to check before torch is even imported, and
say what is really wrong with a damaged reference. Real CLI in a subprocess; `python -X
importtime` lists every module the process imported, so "no torch" is a fact, not a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.e2e.harness import REPO, talk_env


def sisyphus(tmp_path: Path, config_file: Path, *args: str, env: dict[str, str] | None = None):
    """(exit code, the error lines, the top-level modules imported) of `sisyphus ARGS`."""
    environment = env or talk_env(tmp_path)
    environment.update(PULSE_SERVER="unix:/nonexistent", XDG_RUNTIME_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sisyphus.cli", *args, "--config", str(config_file)],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:") and line.strip()]
    return result.returncode, errors, imported


@pytest.fixture(scope="module")
def bad_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-audio")
    nan = np.zeros(24000 * 6, np.float32)
    nan[1000] = np.nan
    sf.write(d / "nan.wav", nan, 24000, subtype="FLOAT")
    sf.write(d / "huge.wav", np.full(24000 * 6, 3e5, np.float32), 24000, subtype="FLOAT")
    return {"nan": d / "nan.wav", "huge": d / "huge.wav"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clone", "vivian", "--audio", "{nan}"], "voice name 'vivian' is taken by the preset speaker 'vivian'"),
        (["clone", "con", "--audio", "{nan}"], "voice name 'con' is a reserved device name on Windows"),
        (["clone", "me", "--audio", "{nan}", "-l", "klingon"], "voice.language: 'klingon' is not a language of models.tts_base"),
        (["clone", "me", "--audio", "{nan}"], "audio file {nan} contains NaN or infinite samples"),
        (["clone", "me", "--audio", "{huge}"], "holds samples far beyond full scale (peak 3e+05, expected at most 1)"),
        (["say", "nobody", "Hello."], "unknown voice 'nobody'"),
        (["say", "vivian", "Hello."], "no audio output device found"),
        (["say", "vivian", "Hello.", "-l", "klingon"], "voice.language: 'klingon' is not a language of models.tts_custom"),
    ],
)
def test_refusals_come_before_torch_is_imported(tmp_path, config_file, tiny_base, bad_audio, args, message):
    args = [arg.format(**bad_audio) for arg in args]
    code, errors, imported = sisyphus(tmp_path, config_file, "voices", *args)
    assert code in (1, 2)
    assert len(errors) == 1 and errors[0].startswith("error: ") and message.format(**bad_audio) in errors[0], errors
    assert "torch" not in imported and "silero_vad" not in imported


@pytest.mark.parametrize("name", ["con", "NUL", "Aux", "prn", "com1", "COM9", "lpt0", "lpt3", "bob\n", "a.b", "x "])
def test_names_windows_cannot_use_are_refused_everywhere(tmp_path, config_file, bad_audio, name):
    code, errors, _ = sisyphus(tmp_path, config_file, "voices", "clone", name, "--audio", str(bad_audio["nan"]))
    assert code == 1 and len(errors) == 1, errors
    assert "reserved device name on Windows" in errors[0] or "invalid voice name" in errors[0], errors
    assert not (config_file.parent / "my-voices").exists()


def test_a_reference_that_decodes_to_noise_is_called_damaged_not_silent(tmp_path, config_file, tiny_base, speech_files):
    """Speech bytes under a header that says otherwise (one byte off) decode to white noise."""
    raw = speech_files["wav22k"].read_bytes()
    shifted = tmp_path / "shifted.wav"
    shifted.write_bytes(raw[:44] + raw[45:] + b"\0")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(raw[:44] + np.random.default_rng(0).bytes(len(raw) - 44))
    for path in (shifted, garbage):
        code, errors, _ = sisyphus(tmp_path, config_file, "voices", "clone", "me", "--audio", str(path), "--text", "Hi.")
        assert code == 1 and len(errors) == 1, errors
        assert f"error: {path.name} decodes to loud noise" in errors[0] and "not speech" in errors[0]
        assert "no speech found" not in errors[0]
    silent = speech_files["silent"]  # real silence still says so
    code, errors, _ = sisyphus(tmp_path, config_file, "voices", "clone", "me", "--audio", str(silent), "--text", "Hi.")
    assert code == 1 and errors == [
        f"error: no speech found in {silent.name}. use a recording of one person speaking clearly for 5-15 seconds"
    ]


def test_list_on_a_fresh_machine_shows_the_presets_and_what_to_download(tmp_path):
    """No models downloaded, no config: the official presets, the default marked, and one
    note per missing model with the command that fetches it; exit code 0."""
    env = talk_env(tmp_path)  # HF_HOME is an empty folder, HF_HUB_OFFLINE=1
    result = subprocess.run(
        [sys.executable, "-m", "sisyphus.cli", "voices", "list"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [line.split()[1] if line.startswith("*") else line.split()[0] for line in lines[1:]]
    assert names == ["serena", "vivian", "uncle_fu", "ryan", "aiden", "ono_anna", "sohee", "eric", "dylan"]
    assert lines[2].startswith("*  vivian    preset  auto")
    assert lines[2].endswith("tts_custom: Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice (not downloaded)")
    assert result.stderr.splitlines() == [
        "note: model Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice is not downloaded (needed for the preset voices): "
        "run `sisyphus models pull tts-custom`",
        "note: model Qwen/Qwen3-TTS-12Hz-1.7B-Base is not downloaded (needed to clone voices and speak in them): "
        "run `sisyphus models pull tts-base`",
    ]
    assert "does not exist" not in result.stdout + result.stderr
