"""The speaker encoder and its mel on their own (reference equality: test_speaker_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisyphus.errors import ModelError, TTSError
from sisyphus.tts.qwen3.speaker import SpeakerEncoder, mel_spectrogram
from tests.tts.codec_support import official_speaker_config, voiced_signal

TINY = {"enc_dim": 24, "enc_channels": [32, 32, 32, 32, 96], "enc_attention_channels": 16,
        "enc_se_channels": 16, "sample_rate": 24000}


@pytest.fixture(scope="module")
def tiny() -> SpeakerEncoder:
    torch.manual_seed(0)
    return SpeakerEncoder.from_config(TINY).eval()


def test_official_config_builds_official_shapes() -> None:
    enc = SpeakerEncoder.from_config(official_speaker_config())
    sd = enc.state_dict()
    assert len(sd) == 76
    assert tuple(sd["blocks.0.conv.weight"].shape) == (512, 128, 5)
    assert tuple(sd["blocks.3.res2net_block.blocks.6.conv.weight"].shape) == (64, 64, 3)
    assert tuple(sd["mfa.conv.weight"].shape) == (1536, 1536, 1)
    assert tuple(sd["asp.tdnn.conv.weight"].shape) == (128, 4608, 1)
    assert tuple(sd["fc.weight"].shape) == (2048, 3072, 1)


def test_embed_shape_and_content(tiny: SpeakerEncoder) -> None:
    a, b = voiced_signal(1.5, seed=1), voiced_signal(1.5, seed=2)
    ea, eb = tiny.embed(a), tiny.embed(b)
    assert ea.shape == (24,) and ea.dtype == torch.float32
    assert torch.equal(ea, tiny.embed(a.copy()))  # deterministic
    assert float((ea - eb).abs().max()) > 1e-4  # depends on the audio
    # Same as running the module on the mel directly: embed adds nothing hidden.
    mels = mel_spectrogram(torch.from_numpy(a)[None]).transpose(1, 2)
    assert torch.allclose(tiny(mels)[0], ea, atol=0, rtol=0)


def test_mel_frames_and_band_of_a_tone() -> None:
    n = 24000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / 24000)).astype(np.float32)
    mel = mel_spectrogram(torch.from_numpy(tone)[None])
    assert mel.shape == (1, 128, (n + 768 - 1024) // 256 + 1)
    # Slaney scale: 1 kHz is 15 mel, 12 kHz is 51.1 mel; 128 bands put a centre every
    # 51.1 / 129 = 0.396 mel, so 1 kHz peaks in band 15 / 0.396 - 1 = 37 (of 0..127).
    assert int(mel[0].mean(dim=1).argmax()) in (36, 37, 38)
    silence = mel_spectrogram(torch.zeros(1, n))
    assert torch.allclose(silence, torch.full_like(silence, float(np.log(1e-5))))


@pytest.mark.parametrize(
    "audio, match",
    [
        (np.zeros((2, 4800), dtype=np.float32), "1-D float"),
        (np.zeros(4800, dtype=np.int16), "1-D float"),
        (np.zeros(100, dtype=np.float32), "too short"),
        (np.full(4800, np.inf, dtype=np.float32), "NaN or infinite"),
    ],
)
def test_bad_audio_refused(tiny: SpeakerEncoder, audio: np.ndarray, match: str) -> None:
    with pytest.raises(TTSError, match=match):
        tiny.embed(audio)


def test_shortest_accepted_audio(tiny: SpeakerEncoder) -> None:
    # Five mel frames: the widest conv (kernel 3, dilation 4) reflects 4 frames each side.
    assert tiny.min_samples == 5 * 256
    assert tiny.embed(voiced_signal(0.1)[:1280]).shape == (24,)
    with pytest.raises(TTSError, match="too short"):
        tiny.embed(voiced_signal(0.1)[:1279])


@pytest.mark.parametrize(
    "config, match",
    [
        ({"enc_dim": 8, "bogus": 1}, "unknown keys: bogus"),
        ({"enc_channels": [32, 32, 96], "enc_kernel_sizes": [5, 1]}, "same length"),
        ({"sample_rate": 16000}, "16000 Hz"),
    ],
)
def test_bad_config_refused(config: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        SpeakerEncoder.from_config(config)
