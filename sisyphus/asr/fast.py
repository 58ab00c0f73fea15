"""Greedy GLM-ASR decoding over a fixed-size static KV cache, the decode step optionally compiled.

transformers' `generate` grows a dynamic KV cache token by token, so every decode step has
new shapes and costs a few hundred small kernel launches from Python. Here the cache is a
`StaticCache` of one fixed length (the prompt of the longest utterance plus the largest
token budget), allocated once and reset between utterances, so the decode step always has
the same shapes and addresses: on CUDA it is compiled once with `torch.compile(mode=
"reduce-overhead", fullgraph=True)` (inductor kernels replayed as CUDA graphs) and serves
every utterance without recompiling. The prefill (audio encoder + prompt) stays eager: its
length changes with the audio and it runs once per utterance. It runs exactly as in
`generate` (on a dynamic cache, so the same kernels and the same first token), and its keys
and values are then copied into the static cache's first slots.

CUDA graph trees keep their recorded graphs per thread, so a compiled decoder runs every
generation on one thread of its own: the warm-up's graphs are the ones the first real turn
replays, whichever worker thread asks for the transcript.

The loop mirrors greedy `generate` exactly: argmax of the last position's logits in fp32,
end tokens suppressed (set to -inf) until `min_new_tokens` ids exist, stop at an end token
or the budget. Only the sampled id is read back to the host each step (to see the end token).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from sisyphus.asr.encoder import EncoderGraph, prompt_embeddings
from sisyphus.runtime import fastpath

log = logging.getLogger(__name__)

ENCODER_NAME = "asr encoder cuda graph"

# Generation settings that change greedy decoding; a checkpoint that sets any of them is
# decoded by `generate`, whose logits processors implement them.
UNSUPPORTED_SETTINGS = {
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
    "exponential_decay_length_penalty": None,
}


# The oldest torch whose torch.compile traced the decode step as one graph here: 2.11 (the GPU
# machine's) and 2.13 did; 2.5.1 cannot trace transformers' model-input wrapper (its use of
# `func.__code__.co_varnames`); versions between were not tried, so they decode with `generate`.
COMPILE_MIN_TORCH = (2, 11)


def compile_blocker(torch_version: str) -> str | None:
    """Why the compiled decode step is not offered with this torch version, or None."""
    found = tuple(int(part) for part in re.findall(r"\d+", torch_version)[:2])
    if found < COMPILE_MIN_TORCH:
        oldest = ".".join(map(str, COMPILE_MIN_TORCH))
        return f"torch {torch_version} is older than {oldest}, the oldest whose torch.compile traces the decode step"
    return None


def unsupported_settings(generation_config: Any) -> list[str]:
    """Names of generation settings this decoder does not implement (empty: it can decode)."""
    found = []
    for name, neutral in UNSUPPORTED_SETTINGS.items():
        value = getattr(generation_config, name, neutral)
        if value not in (neutral, None, [], 0, 1.0):
            found.append(f"{name}={value!r}")
    return found


def eos_ids(model: torch.nn.Module) -> list[int]:
    """The end tokens `generate` stops at, from the generation config (else the model config)."""
    value = getattr(model.generation_config, "eos_token_id", None)
    if value is None:
        value = getattr(model.config.get_text_config(), "eos_token_id", None)
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


@dataclass(frozen=True)
class CacheApi:
    """How the installed transformers takes a KV cache, read once from the model's signature.

    transformers 5.24 renamed `past_key_values=` to `cache=` (an unknown keyword silently falls
    into `**kwargs`, leaving the cache empty), and releases before the static layers kept their
    own write position (`cumulative_length`) wrote at an explicit `cache_position` instead.
    """

    keyword: str  # "cache" (5.24 on) or "past_key_values" (5.0 to 5.23)
    positions: bool  # pass `cache_position` (the forward takes it: older 5.x)


def cache_api(model: torch.nn.Module) -> CacheApi:
    """The cache keyword and position convention of `model.forward`; RuntimeError if it has neither keyword."""
    names = inspect.signature(type(model).forward).parameters
    keyword = next((name for name in ("cache", "past_key_values") if name in names), None)
    if keyword is None:
        raise RuntimeError(f"{type(model).__name__}.forward takes neither cache= nor past_key_values=")
    return CacheApi(keyword=keyword, positions="cache_position" in names)


class StaticDecoder:
    """Greedy decoding for one GLM-ASR model on one device with a reusable static KV cache.

    Not thread safe: the engine's lock serialises calls. `compiled=True` compiles the decode
    step (CUDA graphs on CUDA); the first calls then compile and capture, which is what the
    engine's warm-up is for.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        max_cache_len: int,
        compiled: bool = False,
        features_shape: tuple[int, ...] | None = None,
    ) -> None:
        """`features_shape` (the processor's padded window) with `compiled` on CUDA also runs
        the audio encoder as a CUDA graph (sisyphus/asr/encoder.py)."""
        from transformers import StaticCache

        self.model = model
        self.max_cache_len = max_cache_len
        self.compiled = compiled
        self.device = next(model.parameters()).device
        self.api = cache_api(model)
        self.cache = StaticCache(config=model.config, max_cache_len=max_cache_len)
        if not self.api.positions and not hasattr(self.cache.layers[0], "cumulative_length"):
            raise RuntimeError("this transformers' static cache has neither cache_position nor cumulative_length")
        vocab = model.config.get_text_config().vocab_size
        self._eos = eos_ids(model)
        # Added to the fp32 logits: 0 everywhere, or -inf at the end tokens while they are banned.
        self._allow_end = torch.zeros(vocab, dtype=torch.float32, device=self.device)
        self._ban_end = self._allow_end.clone()
        if self._eos:
            self._ban_end[self._eos] = float("-inf")
        self._end_bias = self._allow_end.clone()
        self._token = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        self._position = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        self._step: Callable[..., tuple[torch.Tensor, torch.Tensor]] = self._decode_step
        self._thread: ThreadPoolExecutor | None = None
        self.encoder: EncoderGraph | None = None
        if compiled and features_shape is not None and self.device.type == "cuda":
            self.encoder = EncoderGraph(model, features_shape, next(model.parameters()).dtype, self.device)
        if compiled:
            self._step = torch.compile(self._decode_step, mode="reduce-overhead", fullgraph=True)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sisyphus-asr-decode")

    def close(self) -> None:
        """Stop the decoder's thread (the engine drops a decoder when its weights move or its self-check fails)."""
        if self._thread is not None:
            self._thread.shutdown(wait=False)
        if self.encoder is not None and self.encoder.graph is not None:
            fastpath.report(ENCODER_NAME, False, "its decoder was dropped", warn=False)
        self.encoder = None

    @property
    def end_ids(self) -> list[int]:
        """The end tokens, banned until `min_new_tokens` ids exist."""
        return list(self._eos)

    def fits(self, prompt_len: int, max_new_tokens: int) -> bool:
        return prompt_len + max_new_tokens <= self.max_cache_len

    def generate(self, inputs: dict[str, torch.Tensor], max_new_tokens: int, min_new_tokens: int = 0) -> list[int]:
        """The greedy ids after the prompt (the processor's inputs, on the model's device)."""
        prompt_len = int(inputs["input_ids"].shape[1])
        if not self.fits(prompt_len, max_new_tokens):
            raise ValueError(f"prompt of {prompt_len} + {max_new_tokens} new tokens exceeds the cache")
        if self._thread is None:
            return self._generate(inputs, prompt_len, max_new_tokens, min_new_tokens)
        job = self._thread.submit(self._generate, inputs, prompt_len, max_new_tokens, min_new_tokens)
        return job.result()

    def teacher_forced_logits(self, inputs: dict[str, torch.Tensor], ids: list[int]) -> torch.Tensor:
        """The fp32 logits (len(ids), vocab) this decoder gives at each step when fed `ids` instead of its own picks.

        The warm-up self-check feeds it the ids `generate` chose and compares the logits with
        `generate`'s: unlike free-running ids, one near-tie decided differently cannot make the
        two runs drift apart. The same prefill, buffers and (compiled) step as `generate` run.
        """
        prompt_len = int(inputs["input_ids"].shape[1])
        if not self.fits(prompt_len, len(ids)):
            raise ValueError(f"prompt of {prompt_len} + {len(ids)} new tokens exceeds the cache")
        if self._thread is None:
            return self._teacher_forced(inputs, prompt_len, ids)
        return self._thread.submit(self._teacher_forced, inputs, prompt_len, ids).result()

    @torch.inference_mode()
    def _generate(
        self, inputs: dict[str, torch.Tensor], prompt_len: int, max_new_tokens: int, min_new_tokens: int
    ) -> list[int]:
        logits = self._start(inputs, prompt_len)
        token = (logits + (self._ban_end if min_new_tokens > 0 else self._allow_end)).argmax(-1, keepdim=True)
        ids = [int(token)]
        self._token.copy_(token)
        while len(ids) < max_new_tokens and ids[-1] not in self._eos:
            self._end_bias.copy_(self._ban_end if len(ids) < min_new_tokens else self._allow_end)
            token, _ = self._next()
            self._token.copy_(token)
            ids.append(int(self._token))
        return ids

    @torch.inference_mode()
    def _teacher_forced(self, inputs: dict[str, torch.Tensor], prompt_len: int, ids: list[int]) -> torch.Tensor:
        rows = [self._start(inputs, prompt_len)]
        self._end_bias.copy_(self._allow_end)
        for forced in ids[:-1]:
            self._token.fill_(forced)
            _, logits = self._next()
            rows.append(logits.clone())  # a CUDA graph's output is overwritten by the next replay
        return torch.cat(rows)

    def _start(self, inputs: dict[str, torch.Tensor], prompt_len: int) -> torch.Tensor:
        """Prefill; the fp32 logits of the first new token. The next step writes slot `prompt_len`."""
        out = self._prefill(inputs, prompt_len)
        self._position.fill_(prompt_len)
        return out.logits[:, -1].to(torch.float32)

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One (compiled) step on `self._token` at `self._position`: the greedy token and the raw fp32 logits."""
        if self.compiled:
            torch.compiler.cudagraph_mark_step_begin()
        token, logits = self._step(self._token, self._position, self._end_bias)
        self._position.add_(1)
        return token, logits

    def _prefill(self, inputs: dict[str, torch.Tensor], prompt_len: int) -> Any:
        """The prompt through the model as `generate` runs it, its keys and values moved into the static cache."""
        from transformers import DynamicCache

        prompt_cache = DynamicCache(config=self.model.config)
        options = {self.api.keyword: prompt_cache, "use_cache": True, "logits_to_keep": 1}
        audio = self._encode(inputs["input_features"])
        if audio is None:
            out = self.model(**inputs, **options)
        else:  # the forward's own steps, with the encoder's output from the graph
            embeds = prompt_embeddings(self.model, inputs["input_ids"], audio)
            out = self.model(inputs_embeds=embeds, attention_mask=inputs.get("attention_mask"), **options)
        self.cache.reset()
        for layer, prompt in zip(self.cache.layers, prompt_cache.layers, strict=True):
            if not layer.is_initialized:
                layer.lazy_initialization(prompt.keys, prompt.values)
            layer.keys[:, :, :prompt_len].copy_(prompt.keys)
            layer.values[:, :, :prompt_len].copy_(prompt.values)
            if hasattr(layer, "cumulative_length"):  # where the next token is written (newer 5.x)
                layer.cumulative_length.fill_(prompt_len)
        return out

    def _encode(self, features: torch.Tensor) -> torch.Tensor | None:
        """The encoder's output from its CUDA graph, or None where the model's forward should encode."""
        if self.encoder is None or not self.encoder.fits(features):
            return None
        first = self.encoder.graph is None
        try:
            audio = self.encoder(features)
        except Exception as exc:  # a capture failure costs the graph, not the fast path
            log.debug("ASR encoder capture failed", exc_info=True)
            fastpath.report(ENCODER_NAME, False, f"capture failed: {str(exc).strip().splitlines()[0][:160]}")
            self.encoder = None
            return None
        if first:
            fastpath.report(ENCODER_NAME, True, f"features {tuple(features.shape)} as one CUDA graph")
        return audio

    def _decode_step(
        self, token: torch.Tensor, position: torch.Tensor, end_bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token in; the greedy next token (end tokens biased) and the raw fp32 logits out.

        The KV cache is updated in place."""
        kwargs: dict[str, Any] = {self.api.keyword: self.cache}
        if self.api.positions:  # older 5.x write the static cache at cache_position
            kwargs["cache_position"] = position.view(1)
        out = self.model(input_ids=token, position_ids=position, use_cache=True, logits_to_keep=1, **kwargs)
        logits = out.logits[:, -1].to(torch.float32)
        return (logits + end_bias).argmax(-1, keepdim=True), logits
