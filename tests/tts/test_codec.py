"""The 12 Hz speech tokenizer on its own: streaming equals one-shot, layout is enforced,
bad input is refused. (Equality with the reference package is in test_codec_parity.py.)"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sisyphus.errors import ModelError, TTSError
from sisyphus.tts.qwen3.codec import TINY_SHRINK, SpeechTokenizer
from tests.tts.codec_support import SHORT_FRAME_SHRINK, official_dir, voiced_signal

FRAME = 1920


@pytest.fixture(scope="module")
def tiny() -> SpeechTokenizer:
    torch.manual_seed(0)
    return SpeechTokenizer.random(official_dir(), seed=3, shrink=TINY_SHRINK)


@pytest.fixture(scope="module")
def saved(tiny: SpeechTokenizer, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("codec") / "speech_tokenizer"
    tiny.save_pretrained(folder)
    return folder


def random_codes(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 2048, (frames, 16), generator=torch.Generator().manual_seed(seed))


def stream(tok: SpeechTokenizer, codes: torch.Tensor, step: int, **kw: int) -> tuple[np.ndarray, list[int]]:
    dec = tok.stream_decoder(**kw)
    pieces = [dec.push(codes[i : i + step]) for i in range(0, codes.shape[0], step)]
    return np.concatenate(pieces), [len(p) for p in pieces]


def test_attributes_and_shapes(tiny: SpeechTokenizer) -> None:
    assert (tiny.sample_rate_hz, tiny.samples_per_frame, tiny.num_codebooks) == (24000, 1920, 16)
    wav = tiny.decode(random_codes(6))
    assert wav.dtype == np.float32 and wav.shape == (6 * FRAME,)
    # Random weights are scaled so audio stays in range: comparisons are not on clipped values.
    assert 0.01 < float(wav.std()) < 0.5
    assert float(np.mean(np.abs(wav) >= 1.0)) < 0.001


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_streaming_equals_one_shot(tiny: SpeechTokenizer, step: int) -> None:
    # 40 frames: five times the tiny decoder's 8-frame attention window.
    codes = random_codes(40, seed=step)
    whole = tiny.decode(codes)
    joined, sizes = stream(tiny, codes, step)
    assert sizes[0] == min(step, 40) * FRAME  # the first push already yields its audio
    assert joined.shape == whole.shape
    assert float(np.abs(joined - whole).max()) <= 1e-4
    # No seams: the step across each push boundary is the one-shot audio's step there.
    seams = np.cumsum(sizes)[:-1]
    if len(seams):
        steps = joined[seams] - joined[seams - 1]
        assert float(np.abs(steps - (whole[seams] - whole[seams - 1])).max()) <= 2e-4


def test_streaming_restarts_windows_like_one_shot() -> None:
    """Across window boundaries (here every 10 frames, re-primed with 3) both paths agree."""
    tok = SpeechTokenizer.random(official_dir(), seed=4, shrink=SHORT_FRAME_SHRINK)
    codes = random_codes(34, seed=9)
    with torch.inference_mode():
        whole = tok.model.decoder.chunked(codes.T.unsqueeze(0), 10, 3)[0, 0].numpy()
        unprimed = tok.model.decoder(codes.T.unsqueeze(0))[0, 0].numpy()
    assert float(np.abs(whole - unprimed).max()) > 1e-3  # the windows do change the audio
    for step in (1, 4, 7, 34):
        joined, _ = stream(tok, codes, step, chunk_frames=10, left_context_frames=3)
        assert float(np.abs(joined - whole).max()) <= 1e-4, step
    # With the official window (300 frames) the same codes decode in one piece.
    assert np.array_equal(tok.decode(codes), unprimed)


def test_stream_decoder_empty_push(tiny: SpeechTokenizer) -> None:
    dec = tiny.stream_decoder()
    assert dec.push(torch.zeros(0, 16, dtype=torch.long)).shape == (0,)
    assert dec.push(random_codes(2)).shape == (2 * FRAME,)
    assert dec.frames_pushed == 2


def test_encode_frames_and_resampling(tiny: SpeechTokenizer) -> None:
    audio = voiced_signal(1.3)
    codes = tiny.encode(audio)
    assert codes.dtype == torch.long and codes.shape == (-(-len(audio) // FRAME), 16)
    assert int(codes.min()) >= 0 and int(codes.max()) < 2048
    assert len(torch.unique(codes[:, 0])) > 3  # codes follow the signal
    # Same audio at 16 kHz goes through the resampler and lands on the same frame count.
    audio16 = voiced_signal(1.3, rate_hz=16000)
    assert tiny.encode(audio16, 16000).shape == codes.shape
    # Stereo [samples, channels] is averaged.
    stereo = np.stack([audio, audio], axis=1)
    assert torch.equal(tiny.encode(stereo), codes)
    assert torch.equal(tiny.encode(torch.from_numpy(audio)), codes)


@pytest.mark.parametrize(
    "codes, match",
    [
        (torch.zeros(4, 15, dtype=torch.long), r"shape \[frames, 16\]"),
        (torch.zeros(4, 16, 1, dtype=torch.long), r"shape \[frames, 16\]"),
        (torch.zeros(4, 16), "integers"),
        (torch.full((4, 16), 2048), r"\[0, 2048\)"),
        (torch.full((4, 16), -1), r"\[0, 2048\)"),
    ],
)
def test_bad_codes_refused(tiny: SpeechTokenizer, codes: torch.Tensor, match: str) -> None:
    with pytest.raises(TTSError, match=match):
        tiny.decode(codes)
    with pytest.raises(TTSError, match=match):
        tiny.stream_decoder().push(codes)


@pytest.mark.parametrize(
    "audio, rate, match",
    [
        (np.zeros(0, dtype=np.float32), 24000, "empty"),
        (np.full(4000, np.nan, dtype=np.float32), 24000, "NaN"),
        (np.zeros((2, 3, 4), dtype=np.float32), 24000, "1-D float"),
        (np.zeros(4000, dtype=np.int16), 24000, "1-D float"),
        (np.zeros(4000, dtype=np.float32), 0, "sample rate"),
        (np.zeros((1, 4000), dtype=np.float32), 24000, r"looks like \[channels, samples\]"),
        (torch.zeros(4000, dtype=torch.int16), 24000, "1-D float"),
    ],
)
def test_bad_audio_refused(tiny: SpeechTokenizer, audio, rate: int, match: str) -> None:
    with pytest.raises(TTSError, match=match):
        tiny.encode(audio, rate)


def test_save_load_roundtrip(tiny: SpeechTokenizer, saved) -> None:
    loaded = SpeechTokenizer.from_pretrained(saved)
    codes = random_codes(5, seed=4)
    assert np.array_equal(loaded.decode(codes), tiny.decode(codes))
    audio = voiced_signal(0.5)
    assert torch.equal(loaded.encode(audio), tiny.encode(audio))
    assert json.loads((saved / "config.json").read_text()) == tiny.config.raw
    half = SpeechTokenizer.from_pretrained(saved, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    assert float(np.abs(half.decode(codes) - tiny.decode(codes)).max()) < 0.2


def test_official_config_files_written_byte_for_byte(tmp_path) -> None:
    tok = SpeechTokenizer.random(official_dir(), shrink=TINY_SHRINK)
    tok.config.raw.update(json.loads((official_dir() / "config.json").read_text()))  # unshrunk text
    tok.save_pretrained(tmp_path)
    for name in ("config.json", "configuration.json", "preprocessor_config.json"):
        assert (tmp_path / name).read_bytes() == (official_dir() / name).read_bytes(), name


def _tamper(saved, tmp_path, change) -> object:
    folder = tmp_path / "bad"
    shutil.copytree(saved, folder)
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors")
    return folder


def test_missing_tensor_refused(saved, tmp_path) -> None:
    name = "decoder.decoder.2.block.1.conv.weight"
    folder = _tamper(saved, tmp_path, lambda t: t.pop(name))
    with pytest.raises(ModelError, match=f"missing tensors: {name}"):
        SpeechTokenizer.from_pretrained(folder)


def test_extra_tensor_refused(saved, tmp_path) -> None:
    folder = _tamper(saved, tmp_path, lambda t: t.update({"decoder.extra.weight": torch.zeros(3)}))
    with pytest.raises(ModelError, match="unexpected tensors: decoder.extra.weight"):
        SpeechTokenizer.from_pretrained(folder)


def test_misshaped_tensor_refused(saved, tmp_path) -> None:
    name = "encoder.quantizer.semantic_residual_vector_quantizer.layers.0.codebook.embed_sum"
    folder = _tamper(saved, tmp_path, lambda t: t.update({name: torch.zeros(1024, 32)}))
    expected = rf"mis-shaped tensors: {name} \(1024, 32\) \(expected \(2048, 32\)\)"
    with pytest.raises(ModelError, match=expected):
        SpeechTokenizer.from_pretrained(folder)


def test_missing_files_refused(saved, tmp_path) -> None:
    with pytest.raises(ModelError, match="config not found"):
        SpeechTokenizer.from_pretrained(tmp_path / "nowhere")
    folder = tmp_path / "noweights"
    shutil.copytree(saved, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="weights file not found"):
        SpeechTokenizer.from_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot read"):
        SpeechTokenizer.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_tts_tokenizer_25hz"}))
    with pytest.raises(ModelError, match="25hz"):
        SpeechTokenizer.from_pretrained(folder)
