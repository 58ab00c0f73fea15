"""The graphed TTS path's state handling, on the CPU; its CUDA graphs where a GPU exists.

CUDA graphs replay a step over one model-lifetime StepState of fixed capacity, with
stale keys from earlier utterances left in its cache. What can be checked without a GPU:
eager steps over that shared state give exactly the plain path's codes, utterance after
utterance (so `load` resets everything a step reads), and a superseded generator refuses
to step. On a GPU, warm-up must turn the graphs on and replayed frames must equal the
plain path's.
"""

from __future__ import annotations

import pytest
import torch

from sisyphus.runtime import fastpath
from sisyphus.tts.qwen3 import ClonePrompt, Qwen3TTS
from sisyphus.tts.qwen3.graphs import StepGraphs
from sisyphus.tts.qwen3.model import GRAPHS_NAME
from tests.tts.support import one_torch_thread, write_tiny_checkpoint  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ("Hello world, this is the test voice.", "The test.", "Hello, hello, hello world is the voice test.")


@pytest.fixture(scope="module")
def cv(tmp_path_factory) -> Qwen3TTS:
    return Qwen3TTS.from_pretrained(str(write_tiny_checkpoint(tmp_path_factory.mktemp("fast") / "cv")))


def frames(model: Qwen3TTS, text: str, k: int, *, graphs: StepGraphs | None, greedy: bool = True,
           seed: int | None = None, replay: bool = False, text_in_prompt: bool = True) -> torch.Tensor:
    prefill, trailing, _, _ = model.prepare(text, model.speakers[0], text_in_prompt=text_in_prompt)
    gen = model._generator(prefill, trailing, max_frames=k, min_frames=k, greedy=greedy, seed=seed,
                           graphs=graphs, replay=replay)
    return torch.stack([gen.step() for _ in range(k)])


@pytest.mark.parametrize("text_in_prompt", [True, False], ids=["text-in-prompt", "trailing-text"])
def test_shared_state_gives_the_plain_codes_utterance_after_utterance(cv, text_in_prompt):
    shared = StepGraphs(cv.talker, capacity=256)
    # Longest first, so later utterances run over stale cache slots and text rows.
    for text, k in zip(TEXTS[::-1], (40, 12, 25)):
        plain = frames(cv, text, k, graphs=None, text_in_prompt=text_in_prompt)
        over_shared = frames(cv, text, k, graphs=shared, text_in_prompt=text_in_prompt)
        assert plain.shape == (k, 16)
        assert torch.equal(over_shared, plain), text
        if not text_in_prompt:
            assert int(shared.state.n_trailing_t) > 0


def test_shared_state_keeps_the_end_of_speech_gate_and_penalty(cv):
    """min_frames and the repetition history live on the device: sampled choices over the
    shared state follow the same gate; greedy with the penalty matches the plain path."""
    shared = StepGraphs(cv.talker, capacity=128)
    frames(cv, TEXTS[0], 30, graphs=shared)  # leave a history behind in `seen`
    prefill, trailing, _, _ = cv.prepare(TEXTS[1], cv.speakers[0])
    gen = cv._generator(prefill, trailing, max_frames=10, min_frames=10, greedy=True, seed=None,
                        graphs=shared, replay=False)
    assert int(shared.state.seen.sum()) == 0 and int(shared.state.frame_t) == 0
    codes = torch.stack([gen.step() for _ in range(10)])
    assert int(shared.state.frame_t) == 10
    assert int((codes[:, 0] == cv.cfg.talker.codec_eos_id).sum()) == 0
    assert torch.equal(codes, frames(cv, TEXTS[1], 10, graphs=None))


def test_a_superseded_generator_refuses_to_step(cv):
    shared = StepGraphs(cv.talker, capacity=128)
    prefill, trailing, _, _ = cv.prepare(TEXTS[1], cv.speakers[0])
    first = cv._generator(prefill, trailing, max_frames=5, min_frames=2, greedy=True, seed=None,
                          graphs=shared, replay=False)
    first.step()
    cv._generator(prefill, trailing, max_frames=5, min_frames=2, greedy=True, seed=None, graphs=shared, replay=False)
    with pytest.raises(RuntimeError, match="newer utterance"):
        first.step()


def test_long_utterances_and_seeds_take_the_plain_path(cv):
    shared = StepGraphs(cv.talker, capacity=64)
    assert shared.fits(20, 43) and not shared.fits(20, 44)
    assert shared.spans() == [64]


def test_warmup_on_cpu_reports_graphs_off_and_keeps_output(cv):
    before = list(cv.stream(TEXTS[1], cv.speakers[0], greedy=True, max_frames=6, min_frames=6))
    cv.warmup()
    state = fastpath.states()[GRAPHS_NAME]
    assert not state.enabled and "cpu" in state.detail
    assert cv.graphs is None
    after = list(cv.stream(TEXTS[1], cv.speakers[0], greedy=True, max_frames=6, min_frames=6))
    assert len(after) == len(before) and all(torch.equal(torch.from_numpy(a), torch.from_numpy(b))
                                             for a, b in zip(after, before))


def test_base_model_warms_up_with_an_x_vector_voice(tmp_path):
    base = Qwen3TTS.from_pretrained(str(write_tiny_checkpoint(tmp_path / "base", "base", "0b6")))
    voice = base._warmup_voice()
    assert isinstance(voice, ClonePrompt) and voice.x_vector_only
    base.warmup()
    assert base.last_stats is not None and base.last_stats.frames == 4


@pytest.mark.cuda
def test_cuda_graphs_replay_the_plain_codes(tmp_path):
    model = Qwen3TTS.from_pretrained(str(write_tiny_checkpoint(tmp_path / "cv")), device="cuda",
                                     dtype=torch.float32)
    plain = frames(model, TEXTS[0], 30, graphs=None)
    model.warmup()
    assert fastpath.states()[GRAPHS_NAME].enabled, fastpath.states()[GRAPHS_NAME].describe()
    assert model.graphs is not None
    replayed = frames(model, TEXTS[0], 30, graphs=model.graphs, replay=True)
    assert torch.equal(replayed.cpu(), plain.cpu())
    # Sampling (the talk default) replays too: with one seed, the eager codes.
    sampled = frames(model, TEXTS[2], 20, graphs=model.graphs, greedy=False, seed=5, replay=True)
    assert sampled.shape == (20, 16) and int(sampled.max()) < model.cfg.talker.vocab_size
    assert torch.equal(sampled.cpu(), frames(model, TEXTS[2], 20, graphs=None, greedy=False, seed=5).cpu())
    assert not torch.equal(sampled.cpu(), frames(model, TEXTS[2], 20, graphs=model.graphs, greedy=False, seed=6,
                                                 replay=True).cpu())
    # Streaming through the graphs gives the same audio as the plain path (fp tolerance).
    with_graphs = list(model.stream(TEXTS[1], model.speakers[0], greedy=True, max_frames=8, min_frames=8))
    graphs, model.graphs = model.graphs, None
    without = list(model.stream(TEXTS[1], model.speakers[0], greedy=True, max_frames=8, min_frames=8))
    model.graphs = graphs
    assert len(with_graphs) == len(without)
    for a, b in zip(with_graphs, without):
        assert abs(a - b).max() < 1e-4


def test_clone_replies_reuse_the_primed_reference_decoder(tmp_path):
    """A clone reference primes the stream decoder once; every reply copies that state and
    still decodes exactly what the one-shot decode of reference + reply gives."""
    import numpy as np

    base = Qwen3TTS.from_pretrained(str(write_tiny_checkpoint(tmp_path / "base", "base", "1b7")))
    t = np.arange(int(2.0 * 24000)) / 24000
    audio = (0.2 * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    prompt = base.create_clone_prompt(audio, 24000, "Hello world, this is the test voice.")
    assert prompt.ref_codes is not None
    runs = []
    for _ in range(3):
        chunks = list(base.stream(TEXTS[1], prompt, greedy=True, max_frames=9, min_frames=9))
        runs.append((np.concatenate(chunks), base.last_codes.clone()))
    assert len(base._primed) == 1
    for wav, codes in runs[1:]:
        assert torch.equal(codes, runs[0][1])
        assert np.array_equal(wav, runs[0][0])
    spf = base.codec.samples_per_frame
    ref_frames = prompt.ref_codes.shape[0]
    one_shot = base.codec.decode(torch.cat((prompt.ref_codes, runs[0][1])))[ref_frames * spf :]
    assert runs[0][0].shape == one_shot.shape
    assert float(np.abs(runs[0][0] - one_shot).max()) < 1e-5


def test_vocoder_in_half_precision_keeps_the_encoder_in_fp32(tmp_path):
    """What a bf16 model gets on a GPU by default (as the official package runs its codec):
    the vocoder in bf16, clone encoding still fp32, streaming still equal to one-shot."""
    import numpy as np

    folder = write_tiny_checkpoint(tmp_path / "base", "base", "1b7")
    full = Qwen3TTS.from_pretrained(str(folder))
    half = Qwen3TTS.from_pretrained(str(folder), codec_dtype=torch.bfloat16)
    assert next(half.codec.model.decoder.parameters()).dtype == torch.bfloat16
    assert half.codec.dtype == torch.float32  # the encoder's
    t = np.arange(int(2.0 * 24000)) / 24000
    audio = (0.2 * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    prompts = [m.create_clone_prompt(audio, 24000, "Hello world, this is the test voice.") for m in (full, half)]
    assert torch.equal(prompts[0].ref_codes, prompts[1].ref_codes)
    wavs = [np.concatenate(list(m.stream(TEXTS[1], p, greedy=True, max_frames=9, min_frames=9)))
            for m, p in zip((full, half), prompts)]
    assert torch.equal(full.last_codes, half.last_codes)
    assert wavs[1].dtype == np.float32 and wavs[1].shape == wavs[0].shape
    peak = float(np.abs(wavs[0]).max())
    assert 0 < float(np.abs(wavs[1] - wavs[0]).max()) < 0.1 * peak  # bf16 rounding, same sound


@pytest.mark.cuda
def test_nonfinite_logits_in_replayed_frames_keep_the_cuda_context(tmp_path):
    """NaN logits while sampling on replayed graphs: no device-side assert; the phrase ends,
    the graphs are dropped with a reason, and the CUDA context keeps working."""
    model = Qwen3TTS.from_pretrained(str(write_tiny_checkpoint(tmp_path / "cv")), device="cuda",
                                     dtype=torch.float32)
    model.warmup()
    assert model.graphs is not None
    with torch.no_grad():
        model.talker.code_predictor.lm_head[2].weight[7, :] = float("nan")
    chunks = list(model.stream(TEXTS[0], model.speakers[0], max_frames=20, min_frames=20))
    assert chunks == [] and model.last_stats.frames == 0
    state = fastpath.states()[GRAPHS_NAME]
    assert not state.enabled and "non-finite" in state.detail and model.graphs is None
    torch.cuda.synchronize()
    assert float(torch.ones(4, device="cuda").sum()) == 4.0
