"""Whole pipeline against the reference: folder -> text (+ voice) -> codes -> 24 kHz audio.

The reference loads the same tiny random folder with its own from_pretrained and speaks
greedily for exactly K frames; Sisyphus streams the same request in small chunks. Codes
must be identical and the joined stream must equal the reference waveform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sisyphus.tts.qwen3 import Qwen3TTS
from tests.oracle.refenv import run_reference
from tests.tts.support import one_torch_thread, write_tiny_checkpoint  # noqa: F401 (fixture)

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("one_torch_thread")]

ORACLE = Path(__file__).resolve().parents[1] / "oracle" / "ref_talker_e2e.py"
FRAMES = 6
WAVE_TOL = 1e-4


def reference_audio(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * 170 * k * t) / k for k in range(1, 5))
    return (0.25 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 2.5 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    cv = write_tiny_checkpoint(tmp / "cv", "custom_voice", "1b7", seed=11)
    base = write_tiny_checkpoint(tmp / "base", "base", "1b7", seed=12)
    audio = reference_audio(1.6, 16000)
    cases = {
        "custom_voice": dict(folder=str(cv), text="hello world, this is a test.", speaker="vivian",
                             language="english"),
        "instruct": dict(folder=str(cv), text="the voice is testing", speaker="eric", language="chinese",
                         instruct="speak slowly"),
        "clone_icl": dict(folder=str(base), text="this is a test of the voice", language="english",
                          ref_audio=audio, ref_sr=16000, ref_text="hello world"),
        "clone_x_vector": dict(folder=str(base), text="hello the world", language="auto",
                               ref_audio=audio, ref_sr=16000, ref_text=None),
    }
    for case in cases.values():
        case["frames"] = FRAMES
    names = list(cases)
    torch.save([cases[n] for n in names], tmp / "cases.pt")
    run_reference(ORACLE, str(tmp / "cases.pt"), str(tmp / "out.pt"))
    refs = torch.load(tmp / "out.pt", weights_only=False)
    return {"cases": cases, "refs": dict(zip(names, refs)), "models": {"cv": cv, "base": base}}


@pytest.mark.parametrize("name", ["custom_voice", "instruct", "clone_icl", "clone_x_vector"])
def test_stream_matches_reference_pipeline(runs, name):
    case, ref = runs["cases"][name], runs["refs"][name]
    model = Qwen3TTS.from_pretrained(case["folder"])
    if case.get("speaker"):
        voice = case["speaker"]
    else:
        voice = model.create_clone_prompt(case["ref_audio"], case["ref_sr"], case["ref_text"])
        assert float((voice.speaker_embedding - ref["spk_embedding"]).abs().max()) < 1e-4
        if case["ref_text"] is not None:
            assert torch.equal(voice.ref_codes, ref["ref_code"])
    chunks = list(model.stream(case["text"], voice, language=case["language"], instruct=case.get("instruct"),
                               greedy=True, max_frames=FRAMES, min_frames=FRAMES,
                               first_chunk_frames=1, chunk_frames=2))
    assert torch.equal(model.last_codes, ref["codes"].cpu()), (model.last_codes, ref["codes"])
    ours = np.concatenate(chunks)
    assert ref["sr"] == model.sample_rate_hz
    assert ours.shape == ref["wav"].shape == (FRAMES * 1920,)
    assert float(np.abs(ours - ref["wav"]).max()) <= WAVE_TOL
    assert float(np.abs(ref["wav"]).max()) > 1e-3
