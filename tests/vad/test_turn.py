"""Smart Turn v3.2: its input features, where its weights come from, and its verdicts on real speech.

The features are checked against transformers' own WhisperFeatureExtractor (the
extractor the model was trained with); the model is the int8 ONNX file packaged in the
pipecat-ai wheel, run on espeak-ng sentences that end and ones that trail off.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sisyphus.errors import ModelError
from sisyphus.frames import MIC_RATE_HZ
from sisyphus.vad import features, turn
from tests.support.speech import espeak, have_espeak, silence

if not have_espeak():
    pytest.fail("espeak-ng is not installed (apt-get install espeak-ng); turn tests need real speech", pytrace=False)

FINISHED = ("Tell me a joke.", "Thank you very much.", "Please turn off the lights in the kitchen.")
TRAILING = ("I'd like to book a table for, um", "My favourite colour is, uh", "What I really want is, um")


@pytest.fixture(scope="module")
def smart_turn() -> turn.SmartTurn:
    return turn.SmartTurn()


def reference_features(audio: np.ndarray) -> np.ndarray:
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=MIC_RATE_HZ, hop_length=160, chunk_length=8,
                                        n_fft=400)
    window = features.last_window(audio)
    out = extractor(window, sampling_rate=MIC_RATE_HZ, return_tensors="np", padding="max_length",
                    max_length=features.WINDOW_SAMPLES, truncation=True, do_normalize=True)
    return out.input_features[0]


@pytest.mark.parametrize("case", ["short speech", "long noisy speech", "silence"])
def test_features_match_the_whisper_feature_extractor(case):
    rng = np.random.default_rng(0)
    speech = espeak("Hello there, how are you doing today?")
    audio = {
        "short speech": speech,
        "long noisy speech": np.concatenate([rng.normal(0, 0.05, 5 * MIC_RATE_HZ).astype(np.float32), speech,
                                             speech]),
        "silence": silence(0.5),
    }[case]
    ours = features.log_mel_features(audio)
    assert ours.shape == (80, 800) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_features(audio), atol=2e-4)


def test_the_window_is_the_last_8_s_padded_at_the_front():
    ramp = np.arange(3 * MIC_RATE_HZ, dtype=np.float32)
    window = features.last_window(ramp)
    assert window.shape == (8 * MIC_RATE_HZ,)
    assert not window[: 5 * MIC_RATE_HZ].any()
    np.testing.assert_array_equal(window[5 * MIC_RATE_HZ :], ramp)
    long = np.arange(10 * MIC_RATE_HZ, dtype=np.float32)
    np.testing.assert_array_equal(features.last_window(long), long[2 * MIC_RATE_HZ :])


def test_the_packaged_model_loads_without_running_pipecat():
    path = turn.smart_turn_path()
    assert path.name == "smart-turn-v3.2-cpu.onnx"
    assert 8_000_000 < path.stat().st_size < 10_000_000
    # pipecat's __init__ sets up its logger and prints a banner: it must not run.
    code = "import sys; from sisyphus.vad.turn import SmartTurn; SmartTurn(); print('pipecat' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_a_missing_model_is_a_model_error_that_says_what_to_do(monkeypatch):
    monkeypatch.setattr(turn, "PACKAGE", "no_such_package_for_sisyphus")
    with pytest.raises(ModelError) as caught:
        turn.load_turn_model("smart-turn")
    assert "pipecat-ai is not installed" in caught.value.message
    assert "pip install pipecat-ai" in caught.value.hint and "vad.turn_model: none" in caught.value.hint
    assert turn.load_turn_model("none") is None


def test_without_the_model_the_session_ends_turns_on_silence_and_says_so(monkeypatch):
    from sisyphus.config import VadConfig
    from sisyphus.vad.endpointer import open_endpointer
    from tests.support.speech import blocks, timeline

    monkeypatch.setattr(turn, "PACKAGE", "no_such_package_for_sisyphus")
    warnings: list[str] = []
    endpointer = open_endpointer(VadConfig(preempt_silence_ms=None), warnings.append)
    assert len(warnings) == 1 and "pipecat-ai" in warnings[0] and "vad.min_silence_ms" in warnings[0]
    audio, _ = timeline([0.5, espeak(TRAILING[0]), 2.0], background=1e-3)
    events = [e for b, t in blocks(audio, 512) for e in endpointer.push(b, t)]
    (utterance,) = [e for e in events if hasattr(e, "decision")]
    assert utterance.decision.reason == "silence" and utterance.decision.probability is None


def _trimmed(text: str) -> np.ndarray:
    """espeak's speech without its trailing silence, then 200 ms of silence (the endpointer's short pause)."""
    audio = espeak(text)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return np.concatenate([audio[: loud[-1] + 1], silence(0.2)])


def test_smart_turn_hears_finished_sentences_as_finished_and_trailing_ones_as_not(smart_turn):
    finished = [smart_turn.complete_probability(_trimmed(text)) for text in FINISHED]
    trailing = [smart_turn.complete_probability(_trimmed(text)) for text in TRAILING]
    assert all(0.0 <= p <= 1.0 for p in finished + trailing)
    assert min(finished) > 0.8, finished
    assert max(trailing) < 0.1, trailing
    # The same input gives the same verdict (no state between calls).
    assert smart_turn.complete_probability(_trimmed(FINISHED[0])) == finished[0]


def test_the_turn_keys_are_checked_and_null_turns_preparation_off(tmp_path):
    from sisyphus.config import load_config
    from sisyphus.errors import ConfigError

    path = tmp_path / "models.yaml"
    path.write_text("vad:\n  turn_model: none\n  preempt_silence_ms: null\n  incomplete_silence_ms: 2000\n")
    vad = load_config(path, env={}).vad
    assert (vad.turn_model, vad.preempt_silence_ms, vad.incomplete_silence_ms) == ("none", None, 2000)
    path.write_text("vad:\n  turn_model: maybe\n  turn_threshold: 1.5\n  complete_silence_ms: 10\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = caught.value.message
    assert "vad.turn_model: must be one of 'smart-turn', 'none', got 'maybe'" in message
    assert "vad.turn_threshold: must be in (0, 1), got 1.5" in message
    assert "vad.complete_silence_ms: must be in [32, 5000], got 10" in message
