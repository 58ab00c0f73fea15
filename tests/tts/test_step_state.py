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


@pytest.mark.parametrize("length", [1, 31, 32, 33, 77])
def test_the_padded_prefill_equals_the_plain_one(cv, length):
    """The graphs' prefill pads the prompt to its bucket: the last real row's hidden state and
    logits, and the cache of the real positions, are the unpadded prefill's (fp32)."""
    from sisyphus.tts.qwen3.generator import StepState

    torch.manual_seed(length)
    prompt = torch.randn(1, length, cv.talker.cfg.hidden_size) * 0.5
    trailing = torch.randn(1, 3, cv.talker.cfg.hidden_size) * 0.5
    pad = torch.zeros(1, cv.talker.cfg.hidden_size)
    plain = StepState(cv.talker, 256)
    shared = StepGraphs(cv.talker, capacity=256)
    with torch.inference_mode():
        plain.load(cv.talker, prompt, trailing, pad)
        shared.state.load(cv.talker, prompt, trailing, pad, run_prefill=lambda x: shared.prefill(x, replay=False))
    assert torch.allclose(shared.state.hidden, plain.hidden, atol=1e-5)
    assert torch.allclose(shared.state.logits, plain.logits, atol=1e-5)
    assert torch.allclose(shared.state.cache.k[:, :, :, :length], plain.cache.k[:, :, :, :length], atol=1e-5)
    assert torch.allclose(shared.state.cache.v[:, :, :, :length], plain.cache.v[:, :, :, :length], atol=1e-5)


def test_a_prompt_longer_than_the_largest_prefill_graph_prefills_unpadded(cv):
    from sisyphus.tts.qwen3.graphs import PREFILL_MAX

    shared = StepGraphs(cv.talker, capacity=1024)
    too_long = torch.zeros(1, PREFILL_MAX + 1, cv.talker.cfg.hidden_size)
    with torch.inference_mode():
        assert shared.prefill(too_long, replay=False) is False
        assert shared.prefill(too_long[:, :PREFILL_MAX], replay=False) is True


def test_the_text_table_on_the_host_gives_the_same_embeddings_and_codes(folder):
    """On a GPU the text-token table stays in host memory; the lookups and the codes are
    unchanged (here on the CPU, where the move is asked for explicitly)."""
    plain, host = Qwen3TTS.from_pretrained(str(folder)), Qwen3TTS.from_pretrained(str(folder))
    host.talker.keep_text_embedding_on_host()
    names = {name for name, _ in host.net.named_parameters()}
    assert "talker.model.text_embedding.weight" not in names
    assert "talker.model.text_embedding.weight" in {name for name, _ in plain.net.named_parameters()}
    ids = torch.tensor([3, 1, 4, 1, 5])
    with torch.inference_mode():
        assert torch.equal(host.talker.text_embed(ids), plain.talker.text_embed(ids))
    assert torch.equal(sampled(host, 5), sampled(plain, 5))
