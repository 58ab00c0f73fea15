"""VoiceRouter: names to (model, speaker or clone prompt), caching, and recomputing a prompt
made with another Base model — on real tiny random checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sisyphus.config import load_config
from sisyphus.errors import VoiceError
from sisyphus.voices.library import VoiceLibrary
from sisyphus.voices.router import VoiceRouter, read_presets
from tests.voices.helpers import read_24k

PRESETS = ["serena", "vivian", "uncle_fu", "ryan", "aiden", "ono_anna", "sohee", "eric", "dylan"]


@pytest.fixture(scope="module")
def base_model(tiny_base: Path):
    from sisyphus.tts.qwen3 import Qwen3TTS

    return Qwen3TTS.from_pretrained(str(tiny_base))


@pytest.fixture(scope="module")
def other_base_model(tiny_other_base: Path):
    from sisyphus.tts.qwen3 import Qwen3TTS

    return Qwen3TTS.from_pretrained(str(tiny_other_base))


def clone_into(library: VoiceLibrary, name: str, model, wav: Path, text: str | None) -> None:
    samples = read_24k(wav)

    def write(path: Path) -> str:
        model.create_clone_prompt(samples, 24000, text=text).save(path)
        return model.name

    library.add(name, samples, text, "english", write)


def test_from_config_reads_the_presets(config_file: Path) -> None:
    config = load_config(config_file, env={})
    speakers, dialects = read_presets(config)
    assert speakers == PRESETS
    assert dialects == {"eric": "sichuan_dialect", "dylan": "beijing_dialect"}
    router = VoiceRouter.from_config(config)
    assert router.library.folder == config_file.parent / "my-voices"
    assert router.presets_known and router.names() == PRESETS
    assert router.resolve("Vivian") == ("tts_custom", "vivian")
    assert router.default_voice() == "vivian"


def test_a_missing_custom_voice_model_leaves_presets_unknown(config_file: Path, tmp_path: Path) -> None:
    config = load_config(config_file, env={}, overrides={"models.tts_custom": str(tmp_path / "absent")})
    router = VoiceRouter.from_config(config)
    assert not router.presets_known and router.names() == []
    # The name is passed through; loading the CustomVoice model then reports it missing.
    assert router.resolve("vivian") == ("tts_custom", "vivian")
    with pytest.raises(VoiceError, match="voice name 'Ryan' is taken by the preset speaker 'ryan'"):
        router.library.check_new_name("Ryan")


def test_cloned_voice_resolves_to_its_stored_prompt(tmp_path: Path, base_model, speech_files) -> None:
    library = VoiceLibrary(tmp_path / "v", PRESETS)
    clone_into(library, "alice", base_model, speech_files["wav22k"], "The quick brown fox.")
    notices: list[str] = []
    router = VoiceRouter(library, notify=notices.append)
    key, prompt = router.resolve("alice", load=lambda key: base_model)
    assert key == "tts_base"
    assert prompt.model_name == base_model.name and not prompt.x_vector_only
    assert prompt.ref_text == "The quick brown fox."
    assert router.resolve("alice")[1] is prompt  # read from disk once
    assert notices == []
    with pytest.raises(VoiceError, match="unknown voice 'bob'"):
        router.resolve("bob")


def test_prompt_of_another_base_model_is_recomputed_once(
    tmp_path: Path, base_model, other_base_model, speech_files
) -> None:
    library = VoiceLibrary(tmp_path / "v", PRESETS)
    clone_into(library, "alice", other_base_model, speech_files["wav22k"], "The quick brown fox.")
    old_prompt = library.get("alice").prompt_path.read_bytes()
    notices: list[str] = []
    router = VoiceRouter(library, notify=notices.append)
    key, prompt = router.resolve("alice", load=lambda key: base_model)
    assert (key, prompt.model_name) == ("tts_base", base_model.name)
    assert notices == [
        f"voice 'alice' was cloned with {other_base_model.name}; "
        f"recomputing its clone prompt for {base_model.name} (once)"
    ]
    stored = yaml.safe_load((library.folder / "alice" / "voice.yaml").read_text())
    assert stored["model"] == base_model.name
    assert library.get("alice").prompt_path.read_bytes() != old_prompt
    # The recomputed prompt equals one made directly with the loaded model.
    direct = base_model.create_clone_prompt(read_24k(library.get("alice").reference_path), 24000,
                                            text="The quick brown fox.", language="english")
    assert (prompt.speaker_embedding - direct.speaker_embedding).abs().max().item() < 1e-5
    # A second session finds the recomputed prompt on disk and says nothing.
    again: list[str] = []
    VoiceRouter(library, notify=again.append).resolve("alice", load=lambda key: base_model)
    assert again == []
    assert sorted(p.name for p in library.folder.iterdir()) == ["alice"]


def test_default_falls_back_when_the_configured_voice_is_gone(tmp_path: Path) -> None:
    notices: list[str] = []
    router = VoiceRouter(VoiceLibrary(tmp_path / "v", ["ryan", "vivian"]), default="alice", notify=notices.append)
    assert router.default_voice() == "vivian"
    assert notices == ["default voice 'alice' does not exist; using 'vivian'"]
    assert VoiceRouter(VoiceLibrary(tmp_path / "v", ["ryan"]), default="x").fallback_default() == "ryan"


def test_a_session_switches_between_preset_and_cloned_voices(
    config_file: Path, tiny_base: Path, speech_files
) -> None:
    """The router behind `talk`: the session's models load the Base model when a cloned voice
    is first used (memory strategy "resident" then keeps both), and audio comes out of both."""
    import numpy as np
    import torch

    from sisyphus.agent.models import ModelSet, RoutedSynthesizer

    config = load_config(config_file, env={})
    router = VoiceRouter.from_config(config)
    models = ModelSet(config, device="cpu", dtype=torch.float32, with_asr=False)
    clone_into(router.library, "fox", models.tts("tts_base"), speech_files["wav22k"], "The quick brown fox.")
    models = ModelSet(config, device="cpu", dtype=torch.float32, with_asr=False)  # a fresh session
    tts = RoutedSynthesizer(models, router, config)
    preset = np.concatenate(list(tts.stream("Hello.", "vivian")))
    assert models.loaded() == ["tts_custom"]
    cloned = np.concatenate(list(tts.stream("Hello.", "fox")))
    assert models.loaded() == ["tts_base", "tts_custom"]
    assert preset.size == cloned.size == 6 * 1920  # max_seconds_per_phrase 0.48 s = 6 frames
    assert float(np.abs(preset - cloned).max()) > 0.01  # two different models spoke
