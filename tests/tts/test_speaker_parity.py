"""The speaker encoder against the reference's own extract_speaker_embedding, same weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sisyphus.tts.qwen3.speaker import SpeakerEncoder
from tests.support.speech import espeak, have_espeak
from tests.tts.codec_support import official_speaker_config, run_oracle, voiced_signal
from tests.tts.test_speaker import TINY

pytestmark = pytest.mark.parity
TOLERANCE = 1e-4


def _audios() -> dict[str, np.ndarray]:
    audios = {
        "voiced": voiced_signal(2.0, seed=11),
        "short": voiced_signal(0.2, seed=12)[:3001],
        "loud": 1.3 * voiced_signal(1.0, seed=13),  # outside [-1, 1]: no hidden normalising
    }
    if have_espeak():
        audios["speech"] = espeak("She sells sea shells by the sea shore.", 24000)
    return audios


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("speaker_parity")
    audios = _audios()
    encoders, args = {}, []
    for i, (name, config) in enumerate({"tiny": TINY, "official": official_speaker_config()}.items()):
        torch.manual_seed(100 + i)
        enc = SpeakerEncoder.from_config(config).eval()
        encoders[name] = enc
        (tmp / f"{name}.json").write_text(json.dumps(config))
        save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, tmp / f"{name}.safetensors")
        np.savez(tmp / f"{name}_in.npz", **{f"audio_{k}": v for k, v in audios.items()})
        args += [tmp / f"{name}{suffix}" for suffix in (".json", ".safetensors", "_in.npz", "_out.npz")]
    result = run_oracle("ref_speaker.py", *args)
    outputs = {name: np.load(tmp / f"{name}_out.npz") for name in encoders}
    return {"encoders": encoders, "audios": audios, "outputs": outputs, "result": result}


def test_reference_loads_our_tensors(runs: dict) -> None:
    for run in runs["result"]["runs"]:
        assert run["missing_keys"] == [] and run["unexpected_keys"] == []


def test_official_layout_matches_reference(runs: dict) -> None:
    ours = {k: list(v.shape) for k, v in runs["encoders"]["official"].state_dict().items()}
    assert ours == runs["result"]["official_shapes"]


@pytest.mark.parametrize("config", ["tiny", "official"])
def test_embedding_matches_reference(runs: dict, config: str) -> None:
    enc, ref = runs["encoders"][config], runs["outputs"][config]
    for name, audio in runs["audios"].items():
        ours = enc.embed(audio).numpy()
        theirs = ref["emb_" + name]
        assert ours.shape == theirs.shape == (enc.cfg.enc_dim,)
        assert float(np.abs(theirs).max()) > 1e-3, name
        assert float(np.abs(ours - theirs).max()) <= TOLERANCE, name
