"""Loading checkpoints: local folders, the Hub cache, sharded weights, and refusals."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from sisyphus.errors import ModelError
from sisyphus.tts.qwen3 import Qwen3TTS
from tests.tts.support import one_torch_thread, write_tiny_checkpoint  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "cv", "custom_voice", "0b6")


def codes_of(model: Qwen3TTS) -> torch.Tensor:
    model.synthesize("hello world", "aiden", greedy=True, max_frames=3)
    return model.last_codes


def copy_of(folder, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def test_wrong_tensors_are_named(folder, tmp_path):
    broken = copy_of(folder, tmp_path)
    state = load_file(str(broken / "model.safetensors"))
    del state["talker.codec_head.weight"]
    state["talker.extra.weight"] = torch.zeros(2)
    state["talker.model.norm.weight"] = torch.zeros(7)
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(ModelError) as err:
        Qwen3TTS.from_pretrained(str(broken))
    msg = err.value.message
    assert "missing 1: talker.codec_head.weight" in msg
    assert "unexpected 1: talker.extra.weight" in msg
    assert "talker.model.norm.weight (7,) (expected (64,))" in msg


def test_sharded_weights_load_the_same(folder, tmp_path):
    sharded = copy_of(folder, tmp_path)
    state = load_file(str(sharded / "model.safetensors"))
    (sharded / "model.safetensors").unlink()
    names = sorted(state)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
        file = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({n: state[n] for n in part}, str(sharded / file))
        weight_map.update({n: file for n in part})
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    expected = codes_of(Qwen3TTS.from_pretrained(str(folder)))
    assert torch.equal(codes_of(Qwen3TTS.from_pretrained(str(sharded))), expected)


def test_hub_repo_id_resolves_from_the_local_cache(folder, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    snapshot = tmp_path / "hub" / "models--Qwen--Qwen3-TTS-12Hz-0.6B-CustomVoice" / "snapshots" / "abc123"
    shutil.copytree(folder, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model = Qwen3TTS.from_pretrained("Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice")
    assert model.name == "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice" and model.size == "0b6"
    with pytest.raises(ModelError) as err:
        Qwen3TTS.from_pretrained("Qwen/Qwen3-TTS-12Hz-1.7B-Base")
    assert "sisyphus models pull Qwen/Qwen3-TTS-12Hz-1.7B-Base" in err.value.hint


@pytest.mark.parametrize("remove,what", [
    ("config.json", "config.json is missing"),
    ("vocab.json", "vocab.json"),
    ("speech_tokenizer", "speech_tokenizer is missing"),
    ("model.safetensors", "no model.safetensors"),
])
def test_incomplete_folder_is_refused(folder, tmp_path, remove, what):
    broken = copy_of(folder, tmp_path)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ModelError, match=what) as err:
        Qwen3TTS.from_pretrained(str(broken))
    assert "sisyphus models pull" in err.value.hint


def test_unsupported_model_type_lists_the_supported(folder, tmp_path):
    other = copy_of(folder, tmp_path)
    config = json.loads((other / "config.json").read_text())
    config["tts_model_type"] = "voice_design"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="voice_design.*custom_voice, base"):
        Qwen3TTS.from_pretrained(str(other))
