"""Silero on onnxruntime (the light remote path) against the TorchScript model the endpointer
runs otherwise: the same probabilities frame by frame, the same turns, and no torch import;
likewise Smart Turn's features on numpy where torch is not loaded."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sisyphus.config import VadConfig
from sisyphus.vad import Endpointer, load_silero_model
from sisyphus.vad.silero_onnx import SileroOnnx
from tests.support.speech import blocks, espeak, timeline


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, _ = timeline([0.7, espeak("Hello there, how are you doing today?"), 1.2,
                         espeak("Please tell me the weather forecast for tomorrow."), 0.9])
    return audio


def test_onnx_and_torchscript_give_the_same_probabilities_frame_by_frame(speech):
    import torch

    onnx, jit = SileroOnnx.load(), load_silero_model()
    frames = [np.ascontiguousarray(speech[i : i + 512]) for i in range(0, speech.size - 511, 512)]
    ours = np.array([onnx.score(f) for f in frames])
    with torch.inference_mode():
        theirs = np.array([float(jit(torch.from_numpy(f), 16000).item()) for f in frames])
    assert np.abs(ours - theirs).max() < 1e-4
    assert (ours > 0.5).sum() > 50  # real speech was scored, not only silence
    onnx.reset_states()
    assert onnx.score(frames[0]) == pytest.approx(ours[0], abs=1e-7)  # reset starts the stream over


def test_the_endpointer_finds_the_same_turns_with_either_model(speech):
    def events(model):
        endpointer = Endpointer(VadConfig(turn_model="none"), model=model)  # turns on silence: Silero alone
        found = [e for block, t in blocks(speech, 512) for e in endpointer.push(block, t)]
        return [(type(e).__name__, round(getattr(e, "t_s", getattr(e, "end_s", 0.0)), 3)) for e in found]

    with_onnx = events(SileroOnnx.load())
    assert with_onnx == events(load_silero_model())
    turns = [kind for kind, _ in with_onnx if kind in ("SpeechStarted", "Utterance")]  # pauses aside
    assert turns == ["SpeechStarted", "Utterance", "SpeechStarted", "Utterance"]


def test_loading_it_imports_no_torch():
    code = ("import sys; from sisyphus.vad.endpointer import Endpointer; from sisyphus.vad.silero_onnx import "
            "SileroOnnx; from sisyphus.config import VadConfig; import numpy as np; "
            "e = Endpointer(VadConfig(), model=SileroOnnx.load()); e.push(np.zeros(4096, np.float32), 1.0); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_smart_turn_features_without_torch_equal_the_torch_ones(speech):
    from sisyphus.vad.features import _log_mel_numpy, last_window, log_mel_features

    import torch  # noqa: F401 - loaded, so log_mel_features takes its torch path

    for audio in (speech, speech[: 16000 * 3]):  # longer than the 8 s window, and shorter (padded)
        ours = _log_mel_numpy(last_window(audio))
        assert ours.shape == (80, 800) and ours.dtype == np.float32
        assert np.abs(ours - log_mel_features(audio)).max() < 1e-4  # float32 rounding (vs the extractor: 2e-4)


def test_smart_turn_runs_without_torch():
    code = ("import sys, numpy as np; from sisyphus.vad.turn import SmartTurn; "
            "p = SmartTurn().complete_probability(np.zeros(16000, np.float32)); "
            "print(0.0 <= p <= 1.0, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "False"]
