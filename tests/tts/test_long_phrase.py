"""A phrase whose trailing text outlasts its length guard (issue 9, item 8).

With text trailing the audio (cloned voices by default, or `text_in_prompt=False`) each
frame reads one text token. When the text has more tokens than the prompt + the frames
the guard allows, the text table used to overflow with a bare RuntimeError. The phrase
now synthesizes up to the guard, with exactly the codes a table large enough for all
the text gives: the tokens cut off could never have been read.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisyphus.tts.qwen3 import Qwen3TTS
from sisyphus.tts.qwen3.graphs import StepGraphs
from tests.tts.support import one_torch_thread, write_tiny_checkpoint  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPF = 1920  # samples per 12.5 Hz frame at 24 kHz
# 40 words: many more trailing text tokens than a 1 s guard (12 frames) has frames.
LONG = (
    "I would like to tell you a rather long story about a small town by the sea where the "
    "fishermen went out every morning before sunrise and came back at noon with their boats "
    "full of silver fish while the children played on the sand."
)
FRAMES = 12  # tts.max_seconds_per_phrase: 1


@pytest.fixture(scope="module")
def cv(tmp_path_factory) -> Qwen3TTS:
    return Qwen3TTS.from_pretrained(str(write_tiny_checkpoint(tmp_path_factory.mktemp("long") / "cv")))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Qwen3TTS:
    return Qwen3TTS.from_pretrained(str(write_tiny_checkpoint(tmp_path_factory.mktemp("long") / "base", "base")))


def reference_audio(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * 24000)) / 24000
    return (0.2 * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def first_codes(model: Qwen3TTS, voice, k: int, max_frames: int, graphs: StepGraphs | None = None,
                **prepare) -> torch.Tensor:
    """The first k greedy frames of a generator allowed max_frames."""
    prefill, trailing, _, _ = model.prepare(LONG, voice, **prepare)
    gen = model._generator(prefill, trailing, max_frames=max_frames, min_frames=k, greedy=True, seed=None,
                           graphs=graphs, replay=False)
    return torch.stack([gen.step() for _ in range(k)])


def test_the_text_outlasts_the_guard(cv, base):
    """Guards the premise: the trailing text is longer than prompt + guard on every voice kind."""
    clone = base.create_clone_prompt(reference_audio(), 24000, "Hello world.")
    for model, voice, kwargs in ((cv, "vivian", {"text_in_prompt": False}), (base, clone, {})):
        prefill, trailing, _, _ = model.prepare(LONG, voice, **kwargs)
        assert trailing.shape[1] > prefill.shape[1] + FRAMES + 1


def test_a_long_phrase_streams_up_to_the_guard_with_the_codes_a_full_table_gives(cv):
    chunks = list(cv.stream(LONG, "vivian", text_in_prompt=False, greedy=True, max_frames=FRAMES,
                            min_frames=FRAMES))
    assert sum(c.shape[0] for c in chunks) == FRAMES * SPF
    assert cv.last_stats.frames == FRAMES and not cv.last_stats.cancelled
    # A generator allowed every trailing token holds the whole text: its first frames are the same.
    prefill, trailing, _, _ = cv.prepare(LONG, "vivian", text_in_prompt=False)
    roomy = first_codes(cv, "vivian", FRAMES, trailing.shape[1], text_in_prompt=False)
    assert torch.equal(cv.last_codes, roomy)


@pytest.mark.parametrize("transcript", [None, "Hello world."], ids=["x-vector", "icl"])
def test_cloned_voices_speak_a_long_phrase(base, transcript):
    prompt = base.create_clone_prompt(reference_audio(), 24000, transcript)
    audio = base.synthesize(LONG, prompt, greedy=True, max_frames=FRAMES, min_frames=FRAMES)
    assert audio.shape == (FRAMES * SPF,) and float(np.abs(audio).max()) > 1e-3
    roomy = first_codes(base, prompt, FRAMES, 400)
    assert torch.equal(base.last_codes, roomy)


def test_the_graphs_state_takes_a_long_phrase_that_fits_its_cache(cv):
    """The graphed path keeps one state of fixed capacity: its fit check counts the prompt
    and the frames; the trailing text, longer than the whole capacity here, needs no room."""
    shared = StepGraphs(cv.talker, capacity=64)
    prefill, trailing, _, _ = cv.prepare(LONG, "vivian", text_in_prompt=False)
    assert trailing.shape[1] > shared.capacity and shared.fits(prefill.shape[1], FRAMES)
    over_shared = first_codes(cv, "vivian", FRAMES, FRAMES, graphs=shared, text_in_prompt=False)
    assert torch.equal(over_shared, first_codes(cv, "vivian", FRAMES, trailing.shape[1], text_in_prompt=False))
