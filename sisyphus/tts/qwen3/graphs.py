"""CUDA graphs for the frame step: one launch per frame instead of about a thousand.

A frame step is the talker's decode step plus fifteen code-predictor steps, each a few
dozen small kernels; at batch size one the GPU waits on Python launching them. Captured
once per (sampling choice, span bucket) over a model-lifetime StepState, a step replays
as one graph. Captures share one memory pool: nothing a graph allocates outlives its
replay (results are copied into the state's buffers inside the graph), and replays never
overlap (one TTS thread, one stream).

Draws come from the StepState's generator, registered with every graph: a replay reads
its seed and offset when it starts and advances it as the eager step would, so seeded
replies replay too and give the eager codes.

The prompt's prefill (the talker over every prompt position, some 1700 launches) is a graph
too, one per prompt size padded to PREFILL_BUCKET positions. Padding changes nothing the
frames read: rows past the prompt see only earlier positions (causal), their logits are
not used (the prompt's last row is picked by a device index), and the cache slots they
write lie beyond the prompt, where each frame overwrites its slot before any query may
attend to it. With graphs, the eager check runs the same padded prefill, so replay and
eager meet the same shapes and give the same codes.

The graphs are used only after a self-check: the same frames made eagerly and by replay,
greedy and sampled with one seed, prefill included, must be identical, or the model falls
back to the plain path and says so once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch

from sisyphus.tts.qwen3.generator import SPAN_BUCKET, SamplingKey, StepBody, StepState
from sisyphus.tts.qwen3.talker import Talker

log = logging.getLogger(__name__)

CAPACITY = 2048  # cache slots: prompt (clone reference included) + frames of the longest phrase
PREFILL_BUCKET = 32  # a prompt is padded to a multiple of this many positions, one graph per size
PREFILL_MAX = 512  # longer prompts prefill eagerly (their frames still replay)


class StepGraphs:
    """Captured frame steps of one talker, keyed by sampling choice and span bucket.

    Nothing CUDA-specific happens before the first capture, so the shared state and the
    eager steps over it (FrameGenerator(replay=False)) also run, and are tested, on a CPU.
    """

    def __init__(self, talker: Talker, capacity: int = CAPACITY) -> None:
        self.talker = talker
        self.state = StepState(talker, capacity)
        self._bodies: dict[SamplingKey, StepBody] = {}
        self._graphs: dict[tuple[SamplingKey, int], torch.cuda.CUDAGraph] = {}
        self._pool: tuple[int, int] | None = None  # made at the first capture (CUDA only)
        self._stream: torch.cuda.Stream | None = None
        self.owner: object | None = None  # the FrameGenerator whose utterance the state holds
        state = self.state
        # The padded prompt, the index of its last real row, and the positions 0..PREFILL_MAX-1.
        self._prefill_x = torch.zeros(1, PREFILL_MAX, state.hidden.shape[-1], dtype=state.hidden.dtype,
                                      device=state.hidden.device)
        self._prefill_last = torch.zeros(1, dtype=torch.long, device=state.hidden.device)
        self._positions = torch.arange(PREFILL_MAX, device=state.hidden.device)
        self._prefills: dict[int, torch.cuda.CUDAGraph] = {}

    @property
    def capacity(self) -> int:
        return self.state.capacity

    def fits(self, prompt_len: int, max_frames: int) -> bool:
        """The prompt (padded) and every frame fit the cache. Trailing text needs no room of its
        own: a FrameGenerator keeps only the rows its frames can read (at most max_frames, plus
        the tts_pad row), and the text table has as many rows as the cache."""
        return prompt_len + max_frames + 1 <= self.capacity and _bucket(prompt_len) <= self.capacity

    def prefill(self, x: torch.Tensor, *, replay: bool) -> bool:
        """Prefill the state from prompt embeddings `x` (1, T, H), padded to its bucket: by
        replaying that bucket's graph, or eagerly (the self-check's side). False for a
        prompt longer than PREFILL_MAX, which the state then prefills eagerly, unpadded."""
        n = x.shape[1]
        size = _bucket(n)
        if size > PREFILL_MAX:
            return False
        self._prefill_x[:, :n].copy_(x)
        self._prefill_x[:, n:size].zero_()
        self._prefill_last.fill_(n - 1)
        if not replay:
            self._prefill_body(size)
            return True
        graph = self._prefills.get(size)
        if graph is None:  # a size not captured at warm-up
            log.debug("capturing the prefill for %d positions", size)
            graph = self._capture(lambda: self._prefill_body(size), warm=False)
            self._prefills[size] = graph
        graph.replay()
        return True

    def _prefill_body(self, size: int) -> None:
        s = self.state
        hidden, logits = self.talker.forward_embeds(self._prefill_x[:, :size], s.cache, self._positions[:size],
                                                    min(self.capacity, size), last=self._prefill_last)
        s.hidden.copy_(hidden)
        s.logits.copy_(logits)

    def body(self, key: SamplingKey) -> StepBody:
        """The step body for `key` (kept for the model's lifetime: graphs point at its tensors)."""
        if key not in self._bodies:
            self._bodies[key] = StepBody(self.talker, self.state, key)
        return self._bodies[key]

    def spans(self) -> list[int]:
        return [SPAN_BUCKET * i for i in range(1, math.ceil(self.capacity / SPAN_BUCKET) + 1)]

    def capture(self, body: StepBody, span: int, *, warm: bool) -> None:
        """Capture `body` at `span` (capture records kernels, it does not run them).

        `warm` first runs the body once eagerly, so lazy kernel and cuBLAS set-up do not
        happen under capture; that run advances the state, so it is only done at warm-up,
        never in the middle of an utterance.
        """
        span = min(span, self.capacity)
        self._graphs[(body.key, span)] = self._capture(lambda: body(span), warm=warm)

    def _capture(self, run: Callable[[], None], *, warm: bool) -> torch.cuda.CUDAGraph:
        """A graph of `run()`, in the shared pool; `warm` runs it eagerly once first (which
        overwrites the state: only at warm-up, never in the middle of an utterance)."""
        if self._stream is None:
            self._pool = torch.cuda.graph_pool_handle()
            self._stream = torch.cuda.Stream(device=self.state.hidden.device)
        self._stream.wait_stream(torch.cuda.current_stream())
        if warm:
            self.owner = None
            self.state.frame_t.zero_()
            with torch.cuda.stream(self._stream):
                run()
        torch.cuda.current_stream().wait_stream(self._stream)
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(self.state.rng)  # before capture: draws replay from the state's generator
        # thread_local: a capture in the middle of a session must not fail the ASR thread's calls
        with torch.cuda.graph(graph, pool=self._pool, stream=self._stream, capture_error_mode="thread_local"):
            run()
        return graph

    def replay(self, body: StepBody, span: int) -> None:
        graph = self._graphs.get((body.key, span))
        if graph is None:  # a sampling choice or span not captured at warm-up
            log.debug("capturing the frame step for span %d", span)
            self.capture(body, span, warm=False)
            graph = self._graphs[(body.key, span)]
        graph.replay()

    def capture_all(self, key: SamplingKey) -> int:
        """Capture every span bucket for `key` and every prefill size (at warm-up, so no turn
        pays for a capture); returns the number of span buckets."""
        body = self.body(key)
        for span in self.spans():
            if (key, span) not in self._graphs:
                self.capture(body, span, warm=True)
        for size in range(PREFILL_BUCKET, min(PREFILL_MAX, self.capacity) + 1, PREFILL_BUCKET):
            if size not in self._prefills:
                self._prefills[size] = self._capture(lambda size=size: self._prefill_body(size), warm=True)
        return len(self.spans())

    @property
    def prefill_sizes(self) -> int:
        return len(self._prefills)


def _bucket(prompt_len: int) -> int:
    return math.ceil(prompt_len / PREFILL_BUCKET) * PREFILL_BUCKET


def unavailable_reason(device: torch.device) -> str:
    """Why graphs cannot run here ("" when they can)."""
    if device.type != "cuda":
        return f"the model runs on {device.type}"
    if not hasattr(torch.cuda, "graph") or not hasattr(torch.cuda, "graph_pool_handle"):
        return f"torch {torch.__version__} has no CUDA graph API"
    if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        return f"torch {torch.__version__} cannot replay draws from a seeded generator in CUDA graphs"
    return ""
