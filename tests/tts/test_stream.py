"""Streaming generation through the Qwen3TTS facade on tiny random checkpoints."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest
import torch

from sisyphus.tts.qwen3 import Qwen3TTS
from sisyphus.tts.qwen3.model import EXTRA_FRAMES, FRAMES_PER_TEXT_TOKEN
from tests.tts.support import one_torch_thread, write_tiny_checkpoint  # noqa: F401 (fixture)

SPF = 1920  # samples per 12.5 Hz frame at 24 kHz
TEXT = "hello world, this is a test."

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Qwen3TTS:
    folder = write_tiny_checkpoint(tmp_path_factory.mktemp("stream") / "cv", "custom_voice", "1b7")
    return Qwen3TTS.from_pretrained(str(folder))


@pytest.mark.parametrize("first,chunk", [(1, 3), (2, 4), (5, 5)])
def test_joined_stream_equals_one_shot_decode(model, first, chunk):
    chunks = list(model.stream(TEXT, "vivian", language="english", greedy=True, max_frames=13,
                               first_chunk_frames=first, chunk_frames=chunk))
    full, rest = divmod(13 - first, chunk)
    expected_sizes = [first] + [chunk] * full + ([rest] if rest else [])
    assert [c.shape[0] // SPF for c in chunks] == expected_sizes
    assert all(c.dtype == np.float32 for c in chunks)
    joined = np.concatenate(chunks)
    one_shot = model.codec.decode(model.last_codes)
    assert joined.shape == one_shot.shape == (13 * SPF,)
    assert float(np.abs(joined - one_shot).max()) <= 1e-4
    assert float(np.abs(one_shot).max()) > 1e-3  # real audio, not silence


def test_greedy_stream_is_deterministic_and_chunking_independent(model):
    a = model.synthesize(TEXT, "vivian", greedy=True, max_frames=8, first_chunk_frames=1, chunk_frames=1)
    codes_a = model.last_codes
    b = model.synthesize(TEXT, "vivian", greedy=True, max_frames=8, first_chunk_frames=3, chunk_frames=2)
    assert torch.equal(codes_a, model.last_codes)
    assert float(np.abs(a - b).max()) <= 1e-4


def test_seed_reproduces_sampling(model):
    model.synthesize(TEXT, "ryan", seed=7, max_frames=6)
    first = model.last_codes
    model.synthesize(TEXT, "ryan", seed=7, max_frames=6)
    again = model.last_codes
    model.synthesize(TEXT, "ryan", seed=8, max_frames=6)
    other = model.last_codes
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_cancel_between_frames_stops_generation(model):
    cancel = threading.Event()
    stream = model.stream(TEXT, "vivian", cancel=cancel, greedy=True, first_chunk_frames=2, max_frames=50)
    first = next(stream)
    cancel.set()
    rest = list(stream)
    assert first.shape == (2 * SPF,)
    assert rest == []
    assert model.last_stats.cancelled is True
    assert model.last_stats.frames == 2


def test_cancel_from_another_thread(model):
    cancel = threading.Event()
    chunks: queue.Queue = queue.Queue()

    def worker() -> None:
        for c in model.stream(TEXT, "vivian", cancel=cancel, first_chunk_frames=1, chunk_frames=1, max_frames=400):
            chunks.put(c)
        chunks.put(None)

    thread = threading.Thread(target=worker)
    thread.start()
    assert chunks.get(timeout=60).shape == (SPF,)
    cancel.set()
    received = 1
    while chunks.get(timeout=60) is not None:
        received += 1
    thread.join(timeout=60)
    assert model.last_stats.cancelled
    assert received == model.last_stats.frames < 400


def test_length_guard_ends_a_stream_that_never_stops(model):
    # Random weights never choose end-of-speech: the guard derived from the text ends it.
    text = "a"
    n_text = len(model.tokenizer.text_ids(text)) - 8
    assert n_text == 1
    audio = model.synthesize(text, "vivian", greedy=True)
    frames = EXTRA_FRAMES + FRAMES_PER_TEXT_TOKEN * n_text
    assert model.last_stats.frames == frames
    assert audio.shape == (frames * SPF,)


@pytest.fixture()
def eager_to_stop(tmp_path) -> Qwen3TTS:
    """A model whose talker always prefers end-of-speech: every text embedding carries a
    constant positive feature 0, the layers add nothing, and only eos reads feature 0."""
    model = Qwen3TTS.from_pretrained(str(write_tiny_checkpoint(tmp_path / "stop", "custom_voice", "1b7")))
    t = model.talker
    with torch.no_grad():
        for layer in t.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        t.text_projection.linear_fc2.weight[0].zero_()
        t.text_projection.linear_fc2.bias[0] = 10.0
        t.model.codec_embedding.weight[:, 0] = 0.0
        for emb in t.code_predictor.model.codec_embedding:
            emb.weight[:, 0] = 0.0
        t.codec_head.weight[:, 0] = 0.0
        t.codec_head.weight[t.cfg.codec_eos_id, 0] = 1000.0
    return model


@pytest.mark.parametrize("min_frames", [2, 5])
def test_end_of_speech_stops_after_min_frames(eager_to_stop, min_frames):
    audio = eager_to_stop.synthesize(TEXT, "vivian", seed=1, min_frames=min_frames, max_frames=40)
    assert eager_to_stop.last_stats.frames == min_frames
    assert audio.shape == (min_frames * SPF,)


def test_stats_describe_the_stream(model):
    model.synthesize(TEXT, "vivian", greedy=True, max_frames=5)
    stats = model.last_stats
    assert stats.frames == 5
    assert stats.audio_s == pytest.approx(5 * 0.08)
    assert 0 < stats.first_audio_s <= stats.wall_s
    assert stats.real_time_factor == pytest.approx(stats.wall_s / stats.audio_s)
    assert stats.cancelled is False


def test_facade_fits_the_engine_protocol(model):
    """The agent drives any SpeechSynthesizer; Qwen3TTS must accept the same call."""
    import inspect

    from sisyphus.tts.engine import SpeechSynthesizer

    ours = inspect.signature(Qwen3TTS.stream).parameters
    for name, param in inspect.signature(SpeechSynthesizer.stream).parameters.items():
        assert name in ours and ours[name].kind == param.kind, name
    engine: SpeechSynthesizer = model
    cancel = threading.Event()
    chunks = []
    for chunk in engine.stream("hello world", "serena", language="english", cancel=cancel):
        chunks.append(chunk)
        cancel.set()
    assert engine.sample_rate_hz == 24000 and [c.shape[0] for c in chunks] == [2 * SPF]
