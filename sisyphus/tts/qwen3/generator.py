"""Frame-by-frame codec generation: prefill once, then `step()` advances exactly one frame.

One step = choose codebook 0 from the talker's logits, let the code predictor fill
codebooks 1..15, and run the talker on the frame's summed embedding (plus the next
trailing text token). Inside a step nothing depends on host values except the attention
span (fixed within a bucket of SPAN_BUCKET slots): the frame counter, the cache position,
the trailing-text lookup and the end-of-speech gate live on the device. So one graph per
span bucket can capture a step later, and the only host read per frame is its 16 codes,
which the caller needs anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sisyphus.tts.qwen3.config import SamplingConfig
from sisyphus.tts.qwen3.sampling import SamplingParams, TalkerSampler, warp_and_pick
from sisyphus.tts.qwen3.talker import Talker

SPAN_BUCKET = 64  # attention spans grow in steps of this many cache slots


@dataclass
class StepRecord:
    """Raw logits seen while making one frame (filled only when asked, for parity tests)."""

    talker_logits: torch.Tensor
    predictor_logits: list[torch.Tensor]


class FrameGenerator:
    """Generates the codec frames of one utterance from its prefill embeddings."""

    def __init__(self, talker: Talker, prefill: torch.Tensor, trailing: torch.Tensor, tts_pad: torch.Tensor,
                 sampling: SamplingConfig, *, max_frames: int, min_frames: int = 2, greedy: bool = False,
                 seed: int | None = None) -> None:
        self.talker = talker
        p = next(talker.parameters())
        self.device = p.device
        self.max_frames = max_frames
        self.prompt_len = prefill.shape[1]
        self.capacity = self.prompt_len + max_frames + 1
        self.cache = talker.new_cache(self.capacity)
        self.pcache = talker.code_predictor.new_cache()
        # Trailing text then tts_pad: frame f reads row min(f, n_trailing).
        self.text_table = torch.cat((trailing.to(p.dtype), tts_pad.view(1, 1, -1).to(p.dtype)), dim=1)
        self.n_trailing = trailing.shape[1]
        self.frame_t = torch.zeros(1, dtype=torch.long, device=self.device)
        self.gen: torch.Generator | None = None
        if seed is not None:
            self.gen = torch.Generator(device=self.device).manual_seed(int(seed))
        do_sample = sampling.do_sample and not greedy
        sub_sample = sampling.sub_do_sample and not greedy
        main = SamplingParams(do_sample, sampling.temperature, sampling.top_k, sampling.top_p)
        self.sub = SamplingParams(sub_sample, sampling.sub_temperature, sampling.sub_top_k, sampling.sub_top_p)
        self.sampler = TalkerSampler(talker.cfg.vocab_size, talker.cfg.codec_eos_id, main,
                                     sampling.repetition_penalty, min_frames, self.device, self.gen)
        self.frame = 0
        with torch.inference_mode():
            positions = torch.arange(self.prompt_len, device=self.device)
            self.hidden, self.logits = talker.forward_embeds(
                prefill.to(p.dtype), self.cache, positions, self._span(self.prompt_len - 1))

    def _span(self, last_pos: int) -> int:
        return min(self.capacity, math.ceil((last_pos + 1) / SPAN_BUCKET) * SPAN_BUCKET)

    @property
    def exhausted(self) -> bool:
        return self.frame >= self.max_frames

    def step(self, force: torch.Tensor | None = None, record: list[StepRecord] | None = None) -> torch.Tensor:
        """Advance one frame; returns its 16 codes as a device tensor (16,).

        `force` (16,) replaces every choice with the given codes (teacher forcing);
        `record` receives the raw logits of this frame.
        """
        if self.exhausted:
            raise IndexError(f"all {self.max_frames} frames of this generator are used")
        with torch.inference_mode():
            return self._step(force, record)

    def _step(self, force: torch.Tensor | None, record: list[StepRecord] | None) -> torch.Tensor:
        t = self.talker
        sub_logits: list[torch.Tensor] | None = [] if record is not None else None
        if record is not None:
            record.append(StepRecord(self.logits.detach().float().clone(), sub_logits))
        if force is None:
            code0 = self.sampler.pick(self.logits, self.frame_t)
            pick = self._sub_pick
        else:
            force = force.to(self.device).long()
            code0 = force[:1]
            self.sampler.seen[0, code0] = True
            pick = lambda logits, g: force[g : g + 1]  # noqa: E731 - tiny closure for forcing
        e0 = t.codec_embed(code0).view(1, 1, -1)
        rest, rest_sum = t.code_predictor.predict(self.hidden, e0, pick, self.pcache, sub_logits)
        text = self.text_table.index_select(1, self.frame_t.clamp(max=self.n_trailing))
        x = e0 + rest_sum + text
        positions = self.frame_t + self.prompt_len
        self.hidden, self.logits = t.forward_embeds(x, self.cache, positions, self._span(self.prompt_len + self.frame))
        self.frame_t += 1
        self.frame += 1
        return torch.cat((code0, rest))

    def _sub_pick(self, logits: torch.Tensor, group: int) -> torch.Tensor:
        return warp_and_pick(logits.float(), self.sub, self.gen)
