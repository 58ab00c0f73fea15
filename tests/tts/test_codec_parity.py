"""The speech tokenizer against the reference qwen-tts package, on the same random weights.

Sisyphus writes a checkpoint; the reference (its own venv) loads it, decodes the same codes
and encodes the same audio. Audio must agree to 1e-4 and codes exactly, streaming included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisyphus.tts.qwen3.codec import TINY_SHRINK, SpeechTokenizer
from tests.support.speech import espeak, have_espeak
from tests.tts.codec_support import SHORT_FRAME_SHRINK, official_dir, run_oracle, voiced_signal

pytestmark = pytest.mark.parity
TOLERANCE = 1e-4


def _codes(frames: int, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2048, (frames, 16), generator=gen).numpy()


def _run_reference(cases: dict[str, tuple[SpeechTokenizer, dict]], tmp) -> dict:
    """Save each case's checkpoint and inputs, run the oracle once, collect its outputs."""
    args: list = []
    for name, (tok, inputs) in cases.items():
        tok.save_pretrained(tmp / name / "speech_tokenizer")
        np.savez(tmp / name / "inputs.npz", **inputs)
        args += [tmp / name / "speech_tokenizer", tmp / name / "inputs.npz", tmp / name / "outputs.npz"]
    infos = run_oracle("ref_codec.py", *args)
    return {
        name: (tok, info, inputs, np.load(tmp / name / "outputs.npz"))
        for (name, (tok, inputs)), info in zip(cases.items(), infos)
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tiny_inputs = {
        # 40 frames: five times the tiny decoder's 8-frame attention window.
        "codes_medium": _codes(40, 1),
        "codes_short": _codes(3, 2),
        "codes_one": _codes(1, 3),
        "audio_voiced": voiced_signal(2.5), "sr_voiced": 24000,
        "audio_odd": voiced_signal(1.01, seed=4)[:24241], "sr_odd": 24000,
        "audio_slow": voiced_signal(1.5, rate_hz=16000, seed=5), "sr_slow": 16000,
        "audio_tiny": voiced_signal(0.03, seed=6), "sr_tiny": 24000,  # under one frame
        # 11 s: the encoder transformer (25 Hz) sees 275 steps, past its configured 250-step
        # sliding window, which the reference does not apply.
        "audio_long": voiced_signal(11.0, seed=7), "sr_long": 24000,
    }
    if have_espeak():
        tiny_inputs.update({"audio_speech": espeak("The quick brown fox jumps over the lazy dog.", 22050),
                            "sr_speech": 22050})
    cases = {
        "tiny": (SpeechTokenizer.random(official_dir(), seed=5, shrink=TINY_SHRINK), tiny_inputs),
        "window": (SpeechTokenizer.random(official_dir(), seed=6, shrink=SHORT_FRAME_SHRINK),
                   {"codes_long": _codes(310, 4)}),
    }
    return _run_reference(cases, tmp_path_factory.mktemp("codec_parity"))


@pytest.mark.parametrize("case", ["tiny", "window"])
def test_reference_loads_our_layout(runs: dict, case: str) -> None:
    _, info, _, _ = runs[case]
    loading = info["loading_info"]
    assert loading["missing_keys"] == [] and loading["unexpected_keys"] == []
    assert loading["mismatched_keys"] == [] and loading["error_msgs"] == []
    assert info["dtype"] == "torch.float32"


@pytest.mark.parametrize(
    "case, name", [("tiny", "medium"), ("tiny", "short"), ("tiny", "one"), ("window", "long")]
)
def test_decode_matches_reference(runs: dict, case: str, name: str) -> None:
    tok, _, inputs, ref = runs[case]
    ours = tok.decode(torch.from_numpy(inputs["codes_" + name]))
    theirs = ref["wav_" + name]
    assert ours.shape == theirs.shape == (inputs["codes_" + name].shape[0] * tok.samples_per_frame,)
    assert float(np.std(theirs)) > 0.01  # real audio, not silence or clipping
    assert float(np.abs(ours - theirs).max()) <= TOLERANCE


@pytest.mark.parametrize(
    "case, name, step",
    [("tiny", "medium", s) for s in (1, 2, 3, 7)]
    # 310 frames: pushes of 2 meet the 300-frame window boundary, pushes of 7 straddle it.
    + [("window", "long", 2), ("window", "long", 7)],
)
def test_streaming_matches_reference(runs: dict, case: str, name: str, step: int) -> None:
    tok, _, inputs, ref = runs[case]
    codes = torch.from_numpy(inputs["codes_" + name])
    dec = tok.stream_decoder()
    joined = np.concatenate([dec.push(codes[i : i + step]) for i in range(0, len(codes), step)])
    assert float(np.abs(joined - ref["wav_" + name]).max()) <= TOLERANCE


def test_encode_matches_reference(runs: dict) -> None:
    tok, _, inputs, ref = runs["tiny"]
    names = [k[len("audio_"):] for k in inputs if k.startswith("audio_")]
    assert len(names) >= 3
    for name in names:
        ours = tok.encode(inputs["audio_" + name], int(inputs["sr_" + name])).numpy()
        theirs = ref["codes_" + name]
        assert ours.shape == theirs.shape and ours.shape[1] == 16, name
        assert len(np.unique(theirs[:, 0])) > 1 or name == "tiny", name
        assert np.array_equal(ours, theirs), (name, int((ours != theirs).sum()))


@pytest.mark.slow
def test_full_size_codec_matches_reference(tmp_path) -> None:
    """The official architecture at full width (random weights): one second each way."""
    tok = SpeechTokenizer.random(official_dir(), seed=6)
    inputs = {"codes_a": _codes(13, 7), "audio_a": voiced_signal(1.0, seed=8), "sr_a": 24000}
    _, info, inputs, ref = _run_reference({"full": (tok, inputs)}, tmp_path)["full"]
    loading = info["loading_info"]
    assert loading["missing_keys"] == [] and loading["unexpected_keys"] == []
    assert loading["mismatched_keys"] == []
    size = (tmp_path / "full" / "speech_tokenizer" / "model.safetensors").stat().st_size
    assert size == 682_293_092  # the published file's size: same tensors, names, dtypes
    ours = tok.decode(torch.from_numpy(inputs["codes_a"]))
    assert float(np.std(ref["wav_a"])) > 0.01
    assert float(np.abs(ours - ref["wav_a"]).max()) <= TOLERANCE
    dec = tok.stream_decoder()
    codes = torch.from_numpy(inputs["codes_a"])
    joined = np.concatenate([dec.push(codes[i : i + 2]) for i in range(0, 13, 2)])
    assert float(np.abs(joined - ref["wav_a"]).max()) <= TOLERANCE
    assert np.array_equal(tok.encode(inputs["audio_a"]).numpy(), ref["codes_a"])
