"""`sisyphus voices clone` and `say` end to end through CliRunner, on tiny random Qwen3-TTS
checkpoints (and a tiny GLM-ASR for --transcribe). Replies stop at 6 codec frames."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from sisyphus.tts.qwen3 import ClonePrompt
from tests.voices.helpers import edit_config, library_of, run, snapshot

FRAME_SAMPLES = 1920  # one 12.5 Hz codec frame at 24 kHz


@pytest.fixture(scope="session")
def tiny_asr(models_dir: Path) -> Path:
    from sisyphus.asr.synthetic import write_tiny_glmasr

    return write_tiny_glmasr(models_dir / "asr")


@pytest.mark.parametrize(
    ("name", "seconds"),
    [("wav22k", 7.37), ("flac44k_stereo_padded", 7.56), ("ogg16k", 7.39), ("wav48k_24bit", 7.37), ("mp3", 7.4)],
)
def test_clone_from_several_formats(config_file: Path, tiny_base: Path, speech_files, name: str, seconds: float) -> None:
    source = speech_files[name]
    result = run(config_file, "clone", "fox", "--audio", str(source), "--text", "The quick brown fox.",
                 "--language", "english")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cloned voice 'fox': ")
    info = library_of(config_file).get("fox")
    assert (info.kind, info.language, info.transcript) == ("cloned", "english", "The quick brown fox.")
    assert info.audio_seconds == pytest.approx(seconds, abs=0.05)
    assert info.source_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    reference, rate = sf.read(info.reference_path)
    assert rate == 24000 and reference.ndim == 1 and abs(reference.size - info.audio_seconds * 24000) <= 12
    prompt = ClonePrompt.load(info.prompt_path)
    assert not prompt.x_vector_only and prompt.ref_text == "The quick brown fox."
    assert prompt.model_name == info.model and Path(info.model).name == tiny_base.name
    # 12.5 codec frames per second of reference, give or take one.
    assert abs(prompt.ref_codes.shape[0] - info.audio_seconds * 12.5) <= 1
    assert "note:" not in result.stderr


def test_clone_without_transcript_warns_about_quality(config_file: Path, tiny_base: Path, speech_files) -> None:
    result = run(config_file, "clone", "fox", "--audio", str(speech_files["four_seconds"]))
    assert result.exit_code == 0, result.output
    assert "warning: four.wav has 4.0 s of speech; voices clone best from 5-15 s" in result.stderr
    assert "note: no transcript: cloning from the speaker embedding only (x-vector)" in result.stderr
    info = library_of(config_file).get("fox")
    assert info.transcript is None and info.x_vector_only
    prompt = ClonePrompt.load(info.prompt_path)
    assert prompt.x_vector_only and prompt.ref_codes is None


def test_clone_with_transcribe(config_file: Path, tiny_base: Path, tiny_asr: Path, speech_files) -> None:
    edit_config(config_file, "models.asr", str(tiny_asr))
    result = run(config_file, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--transcribe")
    assert result.exit_code == 0, result.output
    info = library_of(config_file).get("fox")
    # Random weights "hear" random bytes (fixed seed); what matters is that they are kept
    # as one printable line and reach the prompt.
    assert info.transcript and info.transcript.isprintable()
    said = [line for line in result.stderr.splitlines() if line.startswith("transcript: ")]
    assert said == [f"transcript: {info.transcript}"] and info.transcript
    assert ClonePrompt.load(info.prompt_path).ref_text == info.transcript


def test_clone_force_replaces(config_file: Path, tiny_base: Path, speech_files) -> None:
    assert run(config_file, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--text", "One.").exit_code == 0
    again = run(config_file, "clone", "fox", "--audio", str(speech_files["ogg16k"]), "--text", "Two.")
    assert again.exit_code == 1 and "already exists" in again.stderr
    forced = run(config_file, "clone", "fox", "--audio", str(speech_files["ogg16k"]), "--text", "Two.", "--force")
    assert forced.exit_code == 0, forced.output
    assert library_of(config_file).get("fox").transcript == "Two."
    assert sorted(p.name for p in (config_file.parent / "my-voices").iterdir()) == ["fox"]


def test_clone_unknown_language_changes_nothing(config_file: Path, tiny_base: Path, speech_files) -> None:
    result = run(config_file, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--language", "klingon")
    assert result.exit_code == 2  # a configuration value (voice.language), like every other one
    assert result.stderr.splitlines()[-1].startswith("error: voice.language: 'klingon' is not a language of models.tts_base")
    assert "with one of: auto, chinese, english" in result.stderr
    assert snapshot(config_file.parent / "my-voices") == {}


def test_say_preset_to_a_file(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "vivian.wav"
    result = run(config_file, "say", "vivian", "Hello there.", "--output", str(out))
    assert result.exit_code == 0, result.output
    audio, rate = sf.read(out)
    assert rate == 24000 and audio.shape == (6 * FRAME_SAMPLES,)
    assert 0.0 < abs(audio).max() <= 1.0
    assert result.stdout.strip() == f"wrote 0.48 s of 'vivian' to {out}"


def test_say_cloned_voice_to_a_file(config_file: Path, tiny_base: Path, speech_files, tmp_path: Path) -> None:
    assert run(config_file, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--text", "One.").exit_code == 0
    out = tmp_path / "fox.wav"
    result = run(config_file, "say", "fox", "Hello there.", "--output", str(out))
    assert result.exit_code == 0, result.output
    audio, rate = sf.read(out)
    assert rate == 24000 and audio.shape == (6 * FRAME_SAMPLES,)
    assert "recomputing" not in result.stderr


def test_say_recomputes_a_prompt_from_another_base_model(
    config_file: Path, tiny_base: Path, tiny_other_base: Path, speech_files, tmp_path: Path
) -> None:
    assert run(config_file, "clone", "fox", "--audio", str(speech_files["wav22k"]), "--text", "One.").exit_code == 0
    edit_config(config_file, "models.tts_base", str(tiny_other_base))
    result = run(config_file, "say", "fox", "Hi.", "--output", str(tmp_path / "o.wav"))
    assert result.exit_code == 0, result.output
    assert "voice 'fox' was cloned with " in result.stderr and "recomputing its clone prompt for " in result.stderr
    record = yaml.safe_load((config_file.parent / "my-voices" / "fox" / "voice.yaml").read_text())
    assert Path(record["model"]).name == "base-other"


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["zoe", "Hi."], "error: unknown voice 'zoe'. valid voices: serena, vivian, uncle_fu", 1),
        (["vivian", "   "], "error: the text to say is empty. pass a sentence in quotes", 2),
        (["vivian", "Hi.", "--output", "out.mp3"], "error: --output must be a .wav file, got out.mp3. e.g. --output hello.wav", 2),
    ],
)
def test_say_refusals(config_file: Path, args: list[str], message: str, code: int) -> None:
    result = run(config_file, "say", *args)
    assert result.exit_code == code
    assert result.stderr.startswith(message)
