"""Frame-by-frame codec generation: prefill once, then `step()` advances exactly one frame.

One step = choose codebook 0 from the talker's logits, let the code predictor fill
codebooks 1..15, and run the talker on the frame's summed embedding (plus the next
trailing text token). A step reads and writes only the device buffers of a `StepState`
(caches, last hidden state and logits, frame counter, prompt length, end-of-speech gate,
trailing-text table, codes chosen so far, its random generator); its only host value is
the attention span, fixed within a bucket of SPAN_BUCKET cache slots. So a step can be
captured as a CUDA graph per span bucket (graphs.py) and replayed, and the only host read
per frame is its 16 codes, which the caller needs anyway. Without graphs the same step
body runs eagerly: the plain path.

Draws come from the state's own generator, seeded per utterance (the reply's seed, or a
fresh random one), so a seeded reply gives the same codes eagerly and replayed.

Logits that are not finite (an fp16 overflow, a broken checkpoint) never reach the draw:
`multinomial` on NaN probabilities is a device-side assert on CUDA, which kills the CUDA
context and every model in it. The step sets `state.nonfinite`, draws from a harmless
distribution instead and emits end-of-speech, so the phrase ends and the caller can say why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from sisyphus.tts.qwen3.config import SamplingConfig
from sisyphus.tts.qwen3.sampling import SamplingParams, TalkerSampler, warp_and_pick
from sisyphus.tts.qwen3.talker import Talker

if TYPE_CHECKING:
    from sisyphus.tts.qwen3.graphs import StepGraphs

SPAN_BUCKET = 64  # attention spans grow in steps of this many cache slots


@dataclass
class StepRecord:
    """Raw logits seen while making one frame (filled only when asked, for parity tests)."""

    talker_logits: torch.Tensor
    predictor_logits: list[torch.Tensor]


@dataclass(frozen=True)
class SamplingKey:
    """Everything a captured step bakes in besides the span: how codes are chosen.

    The end-of-speech gate (`min_frames`) and the seed are per-utterance values in the
    StepState, so one capture serves every reply length and seed.
    """

    main: SamplingParams
    sub: SamplingParams
    repetition_penalty: float


def sampling_key(sampling: SamplingConfig, *, greedy: bool) -> SamplingKey:
    main = SamplingParams(sampling.do_sample and not greedy, sampling.temperature, sampling.top_k, sampling.top_p)
    sub = SamplingParams(sampling.sub_do_sample and not greedy, sampling.sub_temperature, sampling.sub_top_k,
                         sampling.sub_top_p)
    return SamplingKey(main, sub, sampling.repetition_penalty)


class StepState:
    """The device buffers one frame step reads and writes.

    The plain path makes one per utterance, sized to it; the graphed path keeps one of a
    fixed capacity for the model's lifetime (captured graphs point at its memory) and
    `load`s each utterance into it.
    """

    def __init__(self, talker: Talker, capacity: int) -> None:
        p = next(talker.parameters())
        cfg = talker.cfg
        self.capacity = capacity
        self.cache = talker.new_cache(capacity)
        self.pcache = talker.code_predictor.new_cache()
        self.hidden = torch.zeros(1, 1, cfg.hidden_size, dtype=p.dtype, device=p.device)
        self.logits = torch.zeros(1, cfg.vocab_size, dtype=p.dtype, device=p.device)
        self.codes = torch.zeros(cfg.predictor.num_code_groups, dtype=torch.long, device=p.device)
        self.seen = torch.zeros(1, cfg.vocab_size, dtype=torch.bool, device=p.device)
        self.frame_t = torch.zeros(1, dtype=torch.long, device=p.device)
        self.prompt_len_t = torch.zeros(1, dtype=torch.long, device=p.device)
        self.n_trailing_t = torch.zeros(1, dtype=torch.long, device=p.device)
        self.min_frames_t = torch.zeros(1, dtype=torch.long, device=p.device)  # end-of-speech blocked before this
        self.nonfinite = torch.zeros(1, dtype=torch.bool, device=p.device)  # some logits were NaN/inf
        self.text_table = torch.zeros(1, capacity, cfg.hidden_size, dtype=p.dtype, device=p.device)
        # Every draw of a step comes from here; graphs register it, so replays draw from it too.
        self.rng = torch.Generator(device=p.device)

    def load(self, talker: Talker, prefill: torch.Tensor, trailing: torch.Tensor, tts_pad: torch.Tensor,
             *, min_frames: int = 2, seed: int | None = None,
             run_prefill: Callable[[torch.Tensor], bool] | None = None) -> int:
        """Prefill an utterance: fill the cache, the text table, the counters and the gate, seed
        the draws (`seed`, or a fresh random seed); returns the prompt length.

        `run_prefill(prefill)` may run the talker over the prompt instead (the graphs' padded
        prefill), setting `hidden` and `logits`; it returns False to leave it to the eager pass.
        """
        if seed is None:
            self.rng.seed()
        else:
            self.rng.manual_seed(int(seed))
        self.min_frames_t.fill_(min_frames)
        self.nonfinite.zero_()
        dtype = self.hidden.dtype
        prompt_len, n_trailing = prefill.shape[1], trailing.shape[1]
        # Trailing text then tts_pad: frame f reads row min(f, n_trailing).
        self.text_table[:, :n_trailing] = trailing.to(dtype)
        self.text_table[:, n_trailing] = tts_pad.view(1, -1).to(dtype)
        self.n_trailing_t.fill_(n_trailing)
        self.prompt_len_t.fill_(prompt_len)
        self.frame_t.zero_()
        self.seen.zero_()
        if run_prefill is not None and run_prefill(prefill.to(dtype)):
            return prompt_len
        positions = torch.arange(prompt_len, device=self.hidden.device)
        hidden, logits = talker.forward_embeds(prefill.to(dtype), self.cache, positions,
                                               span_for(prompt_len - 1, self.capacity))
        self.hidden.copy_(hidden)
        self.logits.copy_(logits)
        return prompt_len


def span_for(last_pos: int, capacity: int) -> int:
    """Cache slots attention looks at when the newest position is `last_pos`."""
    return min(capacity, math.ceil((last_pos + 1) / SPAN_BUCKET) * SPAN_BUCKET)


class StepBody:
    """One frame step over a StepState, with the code choices fixed by a SamplingKey.

    Called eagerly by the plain path, and once per span bucket under CUDA-graph capture.
    """

    def __init__(self, talker: Talker, state: StepState, key: SamplingKey) -> None:
        self.talker, self.state, self.key, self.gen = talker, state, key, state.rng
        cfg = talker.cfg
        device = state.hidden.device
        self.sampler = TalkerSampler(cfg.vocab_size, cfg.codec_eos_id, key.main, key.repetition_penalty,
                                     state.min_frames_t, device, state.rng, seen=state.seen)
        self.eos = torch.full((1,), cfg.codec_eos_id, dtype=torch.long, device=device)

    def __call__(self, span: int, force: torch.Tensor | None = None,
                 record: list[StepRecord] | None = None) -> None:
        """Advance one frame; its codes land in `state.codes`.

        `force` (16,) replaces every choice with the given codes (teacher forcing);
        `record` receives the raw logits of this frame.
        """
        t, s = self.talker, self.state
        sub_logits: list[torch.Tensor] | None = [] if record is not None else None
        if record is not None:
            record.append(StepRecord(s.logits.detach().float().clone(), sub_logits))
        if force is None:
            _flag_nonfinite(s.nonfinite, s.logits)
            code0 = self.sampler.pick(s.logits, s.frame_t)
            pick = self._sub_pick
        else:
            code0 = force[:1]
            self.sampler.mark(code0)
            pick = lambda logits, g: force[g : g + 1]  # noqa: E731 - tiny closure for forcing
        e0 = t.codec_embed(code0).view(1, 1, -1)
        rest, rest_sum = t.code_predictor.predict(s.hidden, e0, pick, s.pcache, sub_logits)
        text = s.text_table.index_select(1, torch.minimum(s.frame_t, s.n_trailing_t))
        hidden, logits = t.forward_embeds(e0 + rest_sum + text, s.cache, s.frame_t + s.prompt_len_t, span)
        s.hidden.copy_(hidden)
        s.logits.copy_(logits)
        s.codes[:1].copy_(torch.where(s.nonfinite, self.eos, code0) if force is None else code0)
        s.codes[1:].copy_(rest)
        s.frame_t.add_(1)

    def _sub_pick(self, logits: torch.Tensor, group: int) -> torch.Tensor:
        _flag_nonfinite(self.state.nonfinite, logits)
        return warp_and_pick(logits.float(), self.key.sub, self.gen)


def _flag_nonfinite(flag: torch.Tensor, logits: torch.Tensor) -> None:
    """flag |= any logit is NaN or inf (on the device: no host read, safe under capture).

    0 * x is 0 for every finite x and NaN for NaN or inf, so the sum is NaN exactly when
    some logit is not finite: four kernels, where isfinite().all() takes seven (it runs
    16 times a frame)."""
    flag.logical_or_(logits.mul(0).sum().isnan().view(1))


class FrameGenerator:
    """Generates the codec frames of one utterance from its prefill embeddings.

    With `graphs` (a model's StepGraphs, CUDA only) the steps replay captured graphs over
    the graphs' own StepState; otherwise they run eagerly over a state sized to this
    utterance.
    """

    def __init__(self, talker: Talker, prefill: torch.Tensor, trailing: torch.Tensor, tts_pad: torch.Tensor,
                 sampling: SamplingConfig, *, max_frames: int, min_frames: int = 2, greedy: bool = False,
                 seed: int | None = None, graphs: StepGraphs | None = None, replay: bool = True) -> None:
        self.talker = talker
        self.device = next(talker.parameters()).device
        self.max_frames = max_frames
        self.frame = 0
        key = sampling_key(sampling, greedy=greedy)
        # Frame f reads trailing text row f, so rows from max_frames on are never read: keep
        # only what the frames can reach. The codes are the same, and the text table (sized
        # to the prompt + frames, or the graphs' fixed capacity) always holds it: a phrase
        # longer than its length guard is cut at the guard instead of crashing the load.
        trailing = trailing[:, :max_frames]
        self.graphs = graphs
        self.replaying = graphs is not None and replay  # replay=False: eager steps over the graphs' state
        with torch.inference_mode():
            if graphs is not None:
                graphs.owner = self  # the state now holds this utterance
                self.state = graphs.state
                self.body = graphs.body(key)
            else:
                self.state = StepState(talker, prefill.shape[1] + max_frames + 1)
                self.body = StepBody(talker, self.state, key)
            run_prefill = None if graphs is None else (lambda x: graphs.prefill(x, replay=self.replaying))
            self.prompt_len = self.state.load(talker, prefill, trailing, tts_pad, min_frames=min_frames, seed=seed,
                                              run_prefill=run_prefill)

    @property
    def exhausted(self) -> bool:
        return self.frame >= self.max_frames

    def step(self, force: torch.Tensor | None = None, record: list[StepRecord] | None = None) -> torch.Tensor:
        """Advance one frame; returns its 16 codes as a device tensor (16,).

        `force` and `record` (teacher forcing, raw logits; parity tests) run the plain step.
        """
        if self.exhausted:
            raise IndexError(f"all {self.max_frames} frames of this generator are used")
        if self.graphs is not None and self.graphs.owner is not self:
            raise RuntimeError("this generator's state was taken by a newer utterance")
        span = span_for(self.prompt_len + self.frame, self.state.capacity)
        with torch.inference_mode():
            if self.replaying and force is None and record is None:
                self.graphs.replay(self.body, span)
            else:
                self.body(span, None if force is None else force.to(self.device).long(), record)
            self.frame += 1
            return self.state.codes.clone()
