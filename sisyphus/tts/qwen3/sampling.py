"""Choosing codes from logits, on the device and with fixed shapes.

The talker's codebook-0 choice goes through, in the reference's order: repetition penalty
over codes already generated, end-of-speech blocked until `min_frames`, control ids
suppressed, then temperature, top-k, top-p and a draw (or argmax when greedy). The code
predictor's choices use temperature/top-k/top-p only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float


def warp_and_pick(scores: torch.Tensor, p: SamplingParams, gen: torch.Generator | None) -> torch.Tensor:
    """scores (1, V) -> code (1,). Greedy is argmax of the processed scores.

    Probabilities that are not a distribution (NaN/inf scores) become a uniform one, so the
    draw never trips `multinomial`'s device-side assert; the step flags such logits itself.
    """
    if not p.do_sample:
        return scores.argmax(dim=-1)
    if p.temperature != 1.0:
        scores = scores / p.temperature
    if 0 < p.top_k < scores.shape[-1]:
        kth = torch.topk(scores, p.top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if p.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=False)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum <= (1 - p.top_p)
        drop_sorted[..., -1:] = False  # always keep the best one
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    probs = scores.float().softmax(dim=-1)
    valid = torch.isfinite(probs).all(dim=-1, keepdim=True) & (probs.sum(dim=-1, keepdim=True) > 0)
    probs = torch.where(valid, probs, torch.ones_like(probs))
    return torch.multinomial(probs, 1, generator=gen).view(1)


class TalkerSampler:
    """Stateful codebook-0 chooser for one utterance (keeps the repetition history)."""

    def __init__(self, vocab_size: int, eos_id: int, params: SamplingParams, repetition_penalty: float,
                 min_frames: int | torch.Tensor, device: torch.device, gen: torch.Generator | None,
                 seen: torch.Tensor | None = None) -> None:
        self.params = params
        self.penalty = repetition_penalty
        self.min_frames = min_frames
        self.eos_id = eos_id
        self.gen = gen
        # Codes chosen so far; the graphed path passes a buffer it clears per utterance.
        self.seen = torch.zeros(1, vocab_size, dtype=torch.bool, device=device) if seen is None else seen
        # Ids of the last 1024 entries are control codes; only end-of-speech may be chosen.
        blocked = torch.zeros(1, vocab_size, dtype=torch.bool, device=device)
        blocked[:, vocab_size - 1024 :] = True
        blocked[:, eos_id] = False
        self.blocked = blocked
        self.eos_onehot = torch.zeros_like(blocked)
        self.eos_onehot[:, eos_id] = True

    def process(self, logits: torch.Tensor, frame: int | torch.Tensor) -> torch.Tensor:
        """Scores after penalty, min-length and suppression (what greedy takes the argmax of).

        `frame` (frames generated so far) may be a device tensor: the end-of-speech gate
        is then applied without reading it on the host.
        """
        scores = logits.float()
        if self.penalty != 1.0:
            pen = torch.where(scores < 0, scores * self.penalty, scores / self.penalty)
            scores = torch.where(self.seen, pen, scores)
        early = torch.as_tensor(frame, device=scores.device) < self.min_frames
        blocked = self.blocked | (self.eos_onehot & early)
        return scores.masked_fill(blocked, float("-inf"))

    def pick(self, logits: torch.Tensor, frame: int | torch.Tensor) -> torch.Tensor:
        code = warp_and_pick(self.process(logits, frame), self.params, self.gen)
        self.mark(code)
        return code

    def mark(self, code: torch.Tensor) -> None:
        """Remember `code` (1,) for the repetition penalty; a scatter keeps it free of host values."""
        self.seen.scatter_(1, code.view(1, 1), True)
