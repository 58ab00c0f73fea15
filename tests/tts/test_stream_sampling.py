"""Code choice: Sisyphus's sampler against transformers' own logits processors.

The reference samples through transformers' generate; the same processors exist in
transformers 5, so the processed scores can be compared exactly on random logits.
"""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    MinNewTokensLengthLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from sisyphus.tts.qwen3.sampling import SamplingParams, TalkerSampler, warp_and_pick

VOCAB, EOS = 3072, 2150


def hf_process(logits: torch.Tensor, history: list[int], min_new: int, penalty: float) -> torch.Tensor:
    ids = torch.tensor([history], dtype=torch.long).view(1, -1)
    scores = logits.clone()
    suppress = [i for i in range(VOCAB - 1024, VOCAB) if i != EOS]
    for proc in (RepetitionPenaltyLogitsProcessor(penalty),
                 MinNewTokensLengthLogitsProcessor(0, min_new, EOS),
                 SuppressTokensLogitsProcessor(suppress)):
        scores = proc(ids, scores)
    return scores


@pytest.mark.parametrize("frame", [0, 1, 2, 7])
def test_talker_scores_equal_transformers_processors(frame):
    gen = torch.Generator().manual_seed(frame)
    logits = torch.randn(1, VOCAB, generator=gen) * 3
    logits[0, EOS] = 50.0  # eos would win if allowed
    history = torch.randint(0, 2048, (frame,), generator=gen).tolist()
    sampler = TalkerSampler(VOCAB, EOS, SamplingParams(False, 1.0, 50, 1.0), 1.05, 2, torch.device("cpu"), None)
    for code in history:
        sampler.seen[0, code] = True
    ours = sampler.process(logits, frame)
    theirs = hf_process(logits, history, 2, 1.05)
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    finite = ~torch.isinf(theirs)
    assert float((ours[finite] - theirs[finite]).abs().max()) == 0.0
    choice = int(sampler.pick(logits, frame))
    assert choice == int(theirs.argmax()) and (choice == EOS) == (frame >= 2)


@pytest.mark.parametrize("top_k,top_p,temperature", [(50, 1.0, 0.9), (5, 0.8, 1.0), (0, 0.5, 0.7), (3, 0.95, 1.3)])
def test_warpers_keep_the_same_candidates_as_transformers(top_k, top_p, temperature):
    gen = torch.Generator().manual_seed(top_k)
    scores = torch.randn(1, 2048, generator=gen) * 2
    ids = torch.zeros(1, 0, dtype=torch.long)
    theirs = scores.clone()
    for proc in ([TemperatureLogitsWarper(temperature)]
                 + ([TopKLogitsWarper(top_k)] if top_k else [])
                 + ([TopPLogitsWarper(top_p)] if top_p < 1.0 else [])):
        theirs = proc(ids, theirs)
    allowed = set(torch.nonzero(~torch.isinf(theirs[0])).view(-1).tolist())
    params = SamplingParams(True, temperature, top_k, top_p)
    draw = torch.Generator().manual_seed(3)
    picks = {int(warp_and_pick(scores, params, draw)) for _ in range(300)}
    assert picks <= allowed
    assert len(picks) >= min(len(allowed), 2)


def test_same_seed_same_draws():
    scores = torch.randn(1, 2048, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(True, 0.9, 50, 1.0)
    a = [int(warp_and_pick(scores, params, torch.Generator().manual_seed(11))) for _ in range(5)]
    b = [int(warp_and_pick(scores, params, torch.Generator().manual_seed(11))) for _ in range(5)]
    assert a == b
