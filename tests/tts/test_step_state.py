"""Seeds and non-finite logits in the frame step, on the CPU.

Seeded draws come from the StepState's own generator, the one CUDA graphs register, so
a seeded reply over the shared (graphable) state must give the plain path's codes, and
two replies with one seed the same codes. Logits that are NaN or inf must end the phrase
with a warning, never reach `multinomial` (a device-side assert on CUDA; an exception on
the CPU).
"""

from __future__ import annotations

import logging

import pytest
import torch

from sisyphus.tts.qwen3 import Qwen3TTS
from sisyphus.tts.qwen3.graphs import StepGraphs
from tests.tts.support import one_torch_thread, write_tiny_checkpoint  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = "Hello, hello, hello world is the voice test."


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("state") / "cv")


@pytest.fixture()
def cv(folder) -> Qwen3TTS:
    return Qwen3TTS.from_pretrained(str(folder))


def sampled(model: Qwen3TTS, seed: int | None, k: int = 24, graphs: StepGraphs | None = None) -> torch.Tensor:
    prefill, trailing, _, _ = model.prepare(TEXT, model.speakers[0])
    gen = model._generator(prefill, trailing, max_frames=k, min_frames=k, greedy=False, seed=seed,
                           graphs=graphs, replay=False)
    return torch.stack([gen.step() for _ in range(k)])


def test_a_seeded_reply_over_the_shared_state_gives_the_plain_codes(cv):
    shared = StepGraphs(cv.talker, capacity=256)
    plain = sampled(cv, 7)
    assert torch.equal(sampled(cv, 7), plain)  # one seed, one reply
    sampled(cv, 8, graphs=shared)  # another reply leaves its draws and history behind
    assert torch.equal(sampled(cv, 7, graphs=shared), plain)
    assert not torch.equal(sampled(cv, 8), plain)


def test_unseeded_replies_differ(cv):
    shared = StepGraphs(cv.talker, capacity=256)
    first, second = sampled(cv, None, graphs=shared), sampled(cv, None, graphs=shared)
    assert first.shape == second.shape == (24, 16)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("where", ["talker", "code predictor"])
@pytest.mark.parametrize("greedy", [False, True], ids=["sampled", "greedy"])
def test_nonfinite_logits_end_the_phrase_with_one_warning(cv, caplog, where, greedy):
    with torch.no_grad():
        head = cv.talker.codec_head if where == "talker" else cv.talker.code_predictor.lm_head[3]
        head.weight[5, :] = float("nan")
    caplog.set_level(logging.WARNING, logger="sisyphus.tts.qwen3.model")
    for _ in range(2):
        chunks = list(cv.stream(TEXT, cv.speakers[0], greedy=greedy, max_frames=20, min_frames=20))
        assert chunks == [] and cv.last_stats.frames == 0
    warnings = [r.getMessage() for r in caplog.records if "non-finite" in r.getMessage()]
    assert len(warnings) == 1 and "frame 1" in warnings[0]
