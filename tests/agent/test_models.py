"""The memory strategy decides what is loaded when: on tiny real checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisyphus.agent.models import ModelSet
from sisyphus.config import load_config
from sisyphus.errors import ModelError


def config_for(memory, asr, custom, base):
    return load_config(
        None, env={},
        overrides={"memory": memory, "device": "cpu", "models.asr": str(asr), "models.tts_custom": str(custom),
                   "models.tts_base": str(base)},
    )  # fmt: skip


@pytest.mark.parametrize(("memory", "at_start"), [("resident", ["asr", "tts_custom"]), ("lazy-tts", ["asr"]), ("swap", ["asr"])])
def test_what_is_loaded_at_start_and_on_first_use(memory, at_start, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder):
    notices: list[str] = []
    config = config_for(memory, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder)
    models = ModelSet(config, device="cpu", dtype=torch.float32, notify=notices.append)
    models.load_at_start("tts_custom")
    assert models.loaded() == at_start
    assert [n.split(" in ")[0] for n in notices] == [f"loaded {name}" for name in at_start]
    # A cloned voice needs the Base model: it is loaded when first asked for.
    base = models.tts("tts_base")
    assert base.kind == "base"
    assert "tts_base" in models.loaded()
    assert models.swapping is False  # swap only matters on a GPU
    text = models.transcribe(np.zeros(16000, np.float32))
    assert isinstance(text, str)


def test_a_missing_model_folder_is_a_model_error(tmp_path, tiny_glmasr_folder, tiny_tts_custom_folder):
    config = config_for("resident", tiny_glmasr_folder, tmp_path / "nowhere", tiny_tts_custom_folder)
    models = ModelSet(config, device="cpu", dtype=torch.float32)
    with pytest.raises(ModelError, match="nowhere does not exist") as info:
        models.tts("tts_custom")
    assert info.value.hint
