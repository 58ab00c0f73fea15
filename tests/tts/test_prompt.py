"""Prompts, voices, clone prompts and bad input through the Qwen3TTS facade."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from sisyphus.errors import TTSError, VoiceError
from sisyphus.tts.qwen3 import ClonePrompt, Qwen3TTS
from sisyphus.tts.qwen3.generator import FrameGenerator
from sisyphus.tts.qwen3.layout import build_layout
from tests.tts.support import one_torch_thread, write_tiny_checkpoint  # noqa: F401 (fixture)

RATE = 24000

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prompt")
    return {
        "cv": write_tiny_checkpoint(tmp / "cv", "custom_voice", "1b7"),
        "cv_small": write_tiny_checkpoint(tmp / "cv_small", "custom_voice", "0b6"),
        "base": write_tiny_checkpoint(tmp / "base", "base", "1b7"),
    }


@pytest.fixture(scope="module")
def cv(folders) -> Qwen3TTS:
    return Qwen3TTS.from_pretrained(str(folders["cv"]))


@pytest.fixture(scope="module")
def base(folders) -> Qwen3TTS:
    return Qwen3TTS.from_pretrained(str(folders["base"]))


def speech_like(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A voiced, amplitude-modulated harmonic signal at a speech-like level."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.2 * tone * env + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def test_facade_describes_the_models(cv, base, folders):
    assert (cv.kind, cv.size, cv.sample_rate_hz, cv.supports_instruct) == ("custom_voice", "1b7", 24000, True)
    assert cv.speakers == ["serena", "vivian", "uncle_fu", "ryan", "aiden", "ono_anna", "sohee", "eric", "dylan"]
    assert cv.languages[0] == "auto" and "english" in cv.languages
    assert not any("dialect" in lang for lang in cv.languages)
    assert (base.kind, base.speakers, base.supports_instruct) == ("base", [], False)
    small = Qwen3TTS.from_pretrained(str(folders["cv_small"]))
    assert (small.size, small.supports_instruct) == ("0b6", False)
    assert cv.name == str(folders["cv"])


def test_custom_voice_layout_reads_like_the_reference():
    from sisyphus.tts.qwen3.synthetic import official_files
    from sisyphus.tts.qwen3.config import parse_model_config

    cfg = parse_model_config(official_files("custom_voice", "1b7")["config.json"])
    ids = [151644, 77091, 198, 11, 12, 151645, 198, 151644, 77091, 198]  # role, "ab", tail
    lay = build_layout(cfg, ids, language="english", speaker="vivian")
    pad, bos, eos = 151671, 151672, 151673
    assert lay.text == [151644, 77091, 198, pad, pad, pad, pad, pad, bos, 11, 12, eos, pad]
    assert lay.codec == [None, None, None, 2154, 2156, 2050, 2157, 3065, 2148, 2148, 2148, 2148, 2149]
    assert lay.trailing == []
    trailing = build_layout(cfg, ids, language="auto", speaker="dylan", text_in_prompt=False)
    # auto + a Beijing-dialect speaker -> the dialect's language id; text trails the audio
    assert trailing.codec == [None, None, None, 2154, 2156, 2074, 2157, 2878, 2148, 2149]
    assert trailing.text[-1] == 11 and trailing.trailing == [12, eos]


@pytest.mark.parametrize("text", ["", "   ", "...", "?! -- ;"])
def test_unspeakable_text_is_refused(cv, text):
    with pytest.raises(TTSError, match="empty|nothing speakable"):
        next(cv.stream(text, "vivian"))


def test_unknown_speaker_lists_the_valid_ones(cv):
    with pytest.raises(TTSError) as err:
        next(cv.stream("hello", "nobody"))
    assert "nobody" in err.value.message and "vivian" in err.value.message and "dylan" in err.value.message


def test_unknown_language_lists_the_valid_ones(cv):
    with pytest.raises(TTSError) as err:
        next(cv.stream("hello", "vivian", language="klingon"))
    assert "klingon" in err.value.message and "auto" in err.value.message and "english" in err.value.message
    with pytest.raises(TTSError):  # dialects come from the speaker, not from the caller
        next(cv.stream("hello", "vivian", language="beijing_dialect"))


def test_instruct_only_where_supported(cv, base, folders):
    assert next(cv.stream("hello", "vivian", instruct="whisper it", max_frames=2)).shape == (2 * 1920,)
    small = Qwen3TTS.from_pretrained(str(folders["cv_small"]))
    with pytest.raises(TTSError, match="instruct"):
        next(small.stream("hello", "vivian", instruct="whisper it"))
    assert next(small.stream("hello", "vivian", instruct=" ", max_frames=2)).shape == (2 * 1920,)
    prompt = base.create_clone_prompt(speech_like(2.0), RATE)
    with pytest.raises(TTSError, match="instruct"):
        next(base.stream("hello", prompt, instruct="whisper it"))


def test_voice_kind_must_fit_the_model(cv, base):
    with pytest.raises(TTSError, match="no preset speakers"):
        next(base.stream("hello", "vivian"))
    with pytest.raises(TTSError, match="cannot clone"):
        cv.create_clone_prompt(speech_like(2.0), RATE, "hello")


@pytest.mark.parametrize("audio,why", [
    (speech_like(0.5), "too short"),
    (np.zeros(RATE * 2, dtype=np.float32), "silent"),
    (np.clip(speech_like(2.0) * 20, -1, 1), "clipped"),
    (np.full(RATE * 2, np.nan, dtype=np.float32), "NaN"),
    (np.arange(RATE * 2), "float"),
])
def test_bad_clone_reference_is_refused(base, audio, why):
    with pytest.raises(TTSError, match=why):
        base.create_clone_prompt(audio, RATE, "hello world")


def test_unreadable_reference_file_is_refused(tmp_path):
    from sisyphus.tts.qwen3.prompt import read_reference_file

    bad = tmp_path / "ref.wav"
    bad.write_bytes(b"not a wav file at all")
    with pytest.raises(TTSError, match="cannot be read"):
        read_reference_file(bad)
    good = tmp_path / "good.wav"
    sf.write(good, speech_like(1.5, 16000), 16000)
    audio, rate = read_reference_file(good)
    assert rate == 16000 and audio.shape == (24000,)


def test_clone_prompts_icl_and_x_vector_only(base, tmp_path):
    audio = speech_like(2.0, 16000)  # not 24 kHz: resampled like the reference
    icl = base.create_clone_prompt(audio, 16000, "hello world")
    xvec = base.create_clone_prompt(audio, 16000)
    assert icl.x_vector_only is False and xvec.x_vector_only is True
    assert icl.ref_codes.shape == (25, 16) and xvec.ref_codes is None
    assert icl.ref_text_ids == base.tokenizer.ref_ids("hello world")
    assert torch.equal(icl.speaker_embedding, xvec.speaker_embedding)
    assert icl.speaker_embedding.shape == (base.cfg.talker.hidden_size,)
    for prompt in (icl, xvec):
        path = tmp_path / ("icl" if not prompt.x_vector_only else "xvec") / "voice.safetensors"
        prompt.save(path)
        loaded = ClonePrompt.load(path)
        assert torch.equal(loaded.speaker_embedding, prompt.speaker_embedding)
        assert (loaded.ref_codes is None) == (prompt.ref_codes is None)
        if prompt.ref_codes is not None:
            assert torch.equal(loaded.ref_codes, prompt.ref_codes)
        assert (loaded.ref_text_ids, loaded.x_vector_only, loaded.model_name) == \
            (prompt.ref_text_ids, prompt.x_vector_only, prompt.model_name)
        a = base.synthesize("the voice is testing", prompt, greedy=True, max_frames=6)
        codes = base.last_codes
        b = base.synthesize("the voice is testing", loaded, greedy=True, max_frames=6)
        assert torch.equal(codes, base.last_codes)
        assert a.shape == b.shape == (6 * 1920,) and float(np.abs(a - b).max()) == 0.0


def test_icl_stream_starts_after_the_reference(base):
    prompt = base.create_clone_prompt(speech_like(2.0), RATE, "hello world")
    audio = base.synthesize("hello", prompt, greedy=True, max_frames=5, first_chunk_frames=1, chunk_frames=2)
    codes = base.last_codes
    full = base.codec.decode(torch.cat([prompt.ref_codes, codes]))
    # The reference decodes reference + new codes together and cuts the reference part off.
    cut = prompt.ref_codes.shape[0] * 1920
    assert float(np.abs(audio - full[cut:]).max()) <= 1e-4


def test_corrupt_clone_prompt_file_is_refused(tmp_path):
    bad = tmp_path / "voice.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(VoiceError, match="cannot be read"):
        ClonePrompt.load(bad)
    with pytest.raises(VoiceError, match="does not exist"):
        ClonePrompt.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_generation_follows_fp32(folders, cv, dtype):
    model = Qwen3TTS.from_pretrained(str(folders["cv"]), dtype=dtype)
    assert next(model.talker.parameters()).dtype == dtype
    audio = model.synthesize("hello world", "vivian", greedy=True, max_frames=4)
    assert audio.dtype == np.float32 and audio.shape == (4 * 1920,) and np.all(np.isfinite(audio))
    # Teacher-forced on the fp32 codes, the half-precision talker's logits stay close.
    cv.synthesize("hello world", "vivian", greedy=True, max_frames=4)
    ref_codes = cv.last_codes
    logits = {}
    for name, m in (("fp32", cv), ("half", model)):
        prefill, trailing, _, _ = m.prepare("hello world", "vivian")
        pad = m.talker.text_embed(torch.tensor([m.cfg.tts_pad_id]))
        gen = FrameGenerator(m.talker, prefill, trailing, pad, m.sampling, max_frames=4, greedy=True)
        records = []
        for codes in ref_codes:
            gen.step(force=codes, record=records)
        logits[name] = torch.stack([r.talker_logits for r in records])
    assert float((logits["fp32"] - logits["half"]).abs().max()) < 0.02 * float(logits["fp32"].abs().max())
