"""GLM-ASR-Nano-2512 in process, through transformers' own GlmAsr classes.

The official checkpoint loads unchanged with `GlmAsrForConditionalGeneration` and
`GlmAsrProcessor`; the request is built by the processor's `apply_transcription_request`
(the model's chat template with its default transcription prompt), so the prompt is the
one the model was trained on. Decoding is greedy with the KV cache and a token budget that
grows with the audio length, so a confused model cannot run for long. One engine is used
by one worker thread at a time (a lock guards it anyway).

On CUDA the warm-up also builds the fast path (sisyphus/asr/fast.py): a fixed-size static
KV cache and a compiled, CUDA-graph decode step, checked against `generate` on the warm-up
audio before it is used; anywhere it cannot run, `generate` stays the decoder and
sisyphus/runtime/fastpath.py says why once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sisyphus.asr.checkpoint import (
    read_config,
    require_files,
    resolve_model_folder,
    weight_files,
)
from sisyphus.asr.fast import StaticDecoder, compile_blocker, unsupported_settings
from sisyphus.asr.selfcheck import self_check
from sisyphus.errors import ConfigError, ModelError
from sisyphus.frames import MIC_RATE_HZ, mono_samples
from sisyphus.runtime.device import pick_device, pick_dtype
from sisyphus.runtime import fastpath

log = logging.getLogger(__name__)

PULL_HINT = "run `sisyphus models pull asr`"
WHAT = "ASR model"
REQUIRED_FILES = ("config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json")

# Shorter audio yields no audio token after the encoder's convolutions and 4x merge.
MIN_AUDIO_S = 0.1
# Token budget: a fixed allowance plus a per-second rate well above fast speech
# (about 5 Chinese characters or 4 English tokens a second), capped.
BASE_NEW_TOKENS = 16
NEW_TOKENS_PER_S = 12.0
MAX_NEW_TOKENS = 512
WARMUP_AUDIO_S = 1.0
# The static cache holds the prompt of the longest utterance the config allows
# (vad.max_utterance_s is at most 30 s, one encoder window) plus the largest budget.
FAST_MAX_AUDIO_S = 30.0
# Forced length of the warm-up self-check (fast path against generate).
SELF_CHECK_TOKENS = 16
FAST_NAME = "asr static cache + compiled decode"
ATTENTION_NAME = "asr flash attention"
DECODE_MODES = ("auto", "plain", "static", "compiled")


class GlmAsrEngine:
    """A loaded GLM-ASR model and processor on one device; implements SpeechRecognizer."""

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        *,
        device: str,
        dtype: torch.dtype,
        folder: Path,
        decode: str = "auto",
    ) -> None:
        """`decode` picks the decoder: "auto" (the compiled static-cache path on CUDA once
        `warmup` has checked it, `generate` otherwise), "plain" (always `generate`),
        "static" (the static-cache loop without compiling, any device: tests and
        debugging) or "compiled" (static cache and compiled step, without the fallback).
        """
        if decode not in DECODE_MODES:
            raise ConfigError(f"decode: must be one of {', '.join(DECODE_MODES)}, got {decode!r}", "fix the ASR decode mode")
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.folder = folder
        self.decode_mode = decode
        self._fast: StaticDecoder | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        repo_or_folder: str,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        cache_dir: str | None = None,
        decode: str = "auto",
    ) -> GlmAsrEngine:
        """Load from a local folder or a Hub repo already in the local cache (never downloads)."""
        folder = resolve_model_folder(repo_or_folder, what=WHAT, pull_hint=PULL_HINT, cache_dir=cache_dir)
        _check_folder(folder)
        device = pick_device(device)
        dtype = dtype or pick_dtype(device, "auto")
        started = time.perf_counter()
        processor = _load_processor(folder)
        model = _load_model(folder, device, dtype, decode)
        log.info("loaded %s from %s on %s in %s (%.1f s)", WHAT, folder, device, dtype, time.perf_counter() - started)
        engine = cls(model, processor, device=device, dtype=dtype, folder=folder, decode=decode)
        if decode in ("static", "compiled"):
            engine._fast = engine._build_fast(compiled=decode == "compiled")
        return engine

    def to(self, device: str) -> GlmAsrEngine:
        """Move the weights (the `swap` memory strategy parks the idle model on the CPU)."""
        with self._lock:
            if str(device) == self.device:
                return self
            self.model.to(device)
            self.device = str(device)
            old, self._fast = self._fast, None
            if old is not None:
                old.close()
            if old is not None and self.decode_mode == "auto":
                # Compiled graphs hold the old weight and cache addresses; rebuilding costs a
                # full compile per swap, so swapped engines decode with `generate`.
                fastpath.report(FAST_NAME, False, "weights moved by the swap memory strategy", warn=False)
            elif old is not None:
                self._fast = self._build_fast(compiled=self.decode_mode == "compiled")
        return self

    def weight_modules(self) -> list[torch.nn.Module]:
        """The modules that hold weights (what the swap strategy's arena adopts)."""
        return [self.model]

    def placed_on(self, device: str) -> None:
        """The weights now live on `device` (the swap arena moved them, at fixed addresses from
        then on): drop the decoder built for the old device; the next warmup() builds and
        checks the fast path there, once."""
        with self._lock:
            self.device = str(device)
            old, self._fast = self._fast, None
            if old is not None:
                old.close()

    def transcribe(self, samples_16k: np.ndarray) -> str:
        """The text of one utterance; "" for empty or too-short audio."""
        return self.decode(self.generate_ids(samples_16k))

    def generate_ids(
        self,
        samples_16k: np.ndarray,
        max_new_tokens: int | None = None,
        min_new_tokens: int | None = None,
    ) -> list[int]:
        """The ids generated after the prompt (an end token included when the model emitted one).

        Public so callers can inspect or re-decode what `transcribe` saw; `max_new_tokens`
        overrides the length-based budget (warm-up uses a tiny one) and `min_new_tokens`
        suppresses the end token until that many ids exist (benchmarks on random weights
        force the length with min = max).
        """
        audio = _as_audio(samples_16k)
        if audio.size < MIN_AUDIO_S * MIC_RATE_HZ:
            return []
        budget = max_new_tokens or new_token_budget(audio.size / MIC_RATE_HZ)
        minimum = min(min_new_tokens or 0, budget)
        with self._lock, torch.inference_mode():
            inputs = self.processor.apply_transcription_request(audio)
            inputs = inputs.to(self.device, dtype=self.dtype)
            prompt_len = inputs["input_ids"].shape[1]
            fast = self._fast
            if fast is not None and fast.fits(prompt_len, budget):
                return fast.generate(dict(inputs), budget, minimum)
            if fast is not None:
                log.debug("prompt of %d tokens + %d does not fit the static cache; using generate", prompt_len, budget)
            return self._generate(inputs, budget, minimum)

    def _generate(self, inputs: Any, budget: int, minimum: int) -> list[int]:
        """transformers' greedy `generate`: the plain path, and the reference the fast path must equal."""
        prompt_len = inputs["input_ids"].shape[1]
        output = self.model.generate(
            **inputs,
            do_sample=False,
            num_beams=1,
            max_new_tokens=budget,
            min_new_tokens=minimum or None,
            use_cache=True,
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        return output[0, prompt_len:].tolist()

    def decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self.processor.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def warmup(self) -> None:
        """Run the decoder before the first turn so kernels, allocator pools and caches exist.

        In "auto" mode on CUDA this is also where the fast path is built, compiled, captured
        and checked against `generate`, so the first turn is as fast as the tenth.
        """
        noise = _warmup_audio()
        started = time.perf_counter()
        if self.decode_mode == "auto" and self._fast is None:
            self._try_fast_path(noise)
        self.generate_ids(noise, max_new_tokens=4)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
        log.info("%s warmed up in %.2f s", WHAT, time.perf_counter() - started)

    def _try_fast_path(self, audio: np.ndarray) -> None:
        """Build, compile and self-check the fast path; on any failure keep `generate` and say why."""
        reason = _fast_path_blocker(self.model, self.device)
        if reason is not None:
            fastpath.report(FAST_NAME, False, reason, warn=self.device.startswith("cuda"))
            return
        fast = None
        try:
            fast = self._build_fast(compiled=True)
            mismatch = self._self_check(fast, audio)
        except Exception as exc:  # any compile/capture failure means "use generate"
            log.debug("ASR fast path failed", exc_info=True)
            mismatch = f"warm-up failed: {_first_line(exc)}"
        if mismatch:
            if fast is not None:
                fast.close()
            fastpath.report(FAST_NAME, False, mismatch)
            return
        self._fast = fast
        fastpath.report(FAST_NAME, True, f"{fast.max_cache_len} cache slots, decode step as CUDA graphs")

    def _build_fast(self, *, compiled: bool) -> StaticDecoder:
        too_old = compile_blocker(torch.__version__) if compiled else None
        if too_old:
            raise ConfigError(f"decode={self.decode_mode}: {too_old}", 'use decode="auto", "static" or "plain"')
        settings = unsupported_settings(self.model.generation_config)
        if settings:
            raise ConfigError(
                f"decode={self.decode_mode}: the static-cache decoder cannot honour {', '.join(settings)} "
                f"from {self.folder / 'generation_config.json'}",
                'use decode="auto" or "plain", which decode with transformers\' generate',
            )
        with torch.inference_mode():
            longest = np.zeros(int(FAST_MAX_AUDIO_S * MIC_RATE_HZ), dtype=np.float32)
            request = self.processor.apply_transcription_request(longest)
        prompt_len = request["input_ids"].shape[1]
        return StaticDecoder(
            self.model,
            max_cache_len=prompt_len + MAX_NEW_TOKENS,
            compiled=compiled,
            features_shape=tuple(request["input_features"].shape),
        )

    def _self_check(self, fast: StaticDecoder, audio: np.ndarray) -> str:
        """Compile/capture by running the fast path, then compare it with `generate`: "" when it may be used.

        Teacher-forced logits within a dtype tolerance, exact ids in fp32 (sisyphus/asr/selfcheck.py).
        """
        with self._lock, torch.inference_mode():
            inputs = self.processor.apply_transcription_request(audio).to(self.device, dtype=self.dtype)
            return self_check(fast, self.model, dict(inputs), SELF_CHECK_TOKENS, self.processor.tokenizer.pad_token_id)


def _warmup_audio() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 1e-3, int(WARMUP_AUDIO_S * MIC_RATE_HZ)).astype(np.float32)


def _fast_path_blocker(model: torch.nn.Module, device: str) -> str | None:
    """Why the compiled fast path cannot run here, or None when it can be tried."""
    if not device.startswith("cuda"):
        return f"device is {device}; CUDA graphs need a CUDA GPU"
    if not hasattr(torch, "compile") or not hasattr(torch.compiler, "cudagraph_mark_step_begin"):
        return f"torch {torch.__version__} lacks torch.compile CUDA graph support"
    too_old = compile_blocker(torch.__version__)
    if too_old:
        return too_old
    settings = unsupported_settings(model.generation_config)
    if settings:
        return f"generation config sets {', '.join(settings)}"
    return None


def new_token_budget(duration_s: float) -> int:
    return min(MAX_NEW_TOKENS, BASE_NEW_TOKENS + math.ceil(NEW_TOKENS_PER_S * duration_s))


def _as_audio(samples: np.ndarray) -> np.ndarray:
    audio = mono_samples(samples)
    audio = np.nan_to_num(audio.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(audio, -1.0, 1.0)


def _check_folder(folder: Path) -> None:
    config = read_config(folder, what=WHAT)
    if config.get("model_type") != "glmasr":
        found = config.get("model_type", "none")
        raise ModelError(
            f"{folder} is not a GLM-ASR checkpoint (config.json model_type is {found!r}, expected 'glmasr')",
            f"point models.asr at GLM-ASR-Nano-2512 (current revision), or {PULL_HINT}",
        )
    weight_files(folder)
    require_files(folder, REQUIRED_FILES, what=WHAT)


def _load_processor(folder: Path) -> Any:
    from transformers import GlmAsrProcessor

    try:
        processor = GlmAsrProcessor.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{WHAT} processor in {folder} could not be loaded: {_first_line(exc)}", PULL_HINT) from exc
    if not processor.chat_template:
        raise ModelError(f"{WHAT} folder {folder} has no chat template (chat_template.jinja)", PULL_HINT)
    return processor


def _load_model(folder: Path, device: str, dtype: torch.dtype, decode: str = "plain") -> torch.nn.Module:
    from safetensors import SafetensorError
    from transformers import GlmAsrForConditionalGeneration

    attention = _attention_implementation(device, dtype, decode)
    try:
        try:
            model, info = GlmAsrForConditionalGeneration.from_pretrained(
                folder, dtype=dtype, attn_implementation=attention, output_loading_info=True
            )
        except (ImportError, ValueError, RuntimeError) as exc:
            if attention == "sdpa":
                raise
            fastpath.report(ATTENTION_NAME, False, f"flash_attention_2 failed: {_first_line(exc)}; using SDPA")
            model, info = GlmAsrForConditionalGeneration.from_pretrained(
                folder, dtype=dtype, attn_implementation="sdpa", output_loading_info=True
            )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{WHAT} weights in {folder} could not be loaded: {_first_line(exc)}", PULL_HINT) from exc
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or [])
    if missing or mismatched:
        bad = missing or mismatched
        kind = "missing" if missing else "with the wrong shape"
        raise ModelError(
            f"{WHAT} weights in {folder} are incomplete: {len(bad)} tensors {kind} (e.g. {bad[0]})",
            PULL_HINT,
        )
    if info.get("unexpected_keys"):
        log.debug("ignored %d unexpected tensors in %s", len(info["unexpected_keys"]), folder)
    return model.to(device).eval()


def _attention_implementation(device: str, dtype: torch.dtype, decode: str) -> str:
    """SDPA, or the flash-attn package's kernels where they can serve.

    On CUDA, SDPA already runs PyTorch's own flash / memory-efficient kernels; the flash-attn
    package breaks the compiled decode graph (transformers compiles it with graph breaks), so
    it is only used when `generate` is the decoder by choice (decode="plain").
    """
    from transformers.utils import is_flash_attn_2_available

    if not device.startswith("cuda"):
        fastpath.report(ATTENTION_NAME, False, f"device is {device}; using SDPA", warn=False)
        return "sdpa"
    if dtype not in (torch.float16, torch.bfloat16):
        fastpath.report(ATTENTION_NAME, False, f"dtype is {dtype}; using SDPA", warn=False)
        return "sdpa"
    if not is_flash_attn_2_available():
        fastpath.report(ATTENTION_NAME, False, "flash-attn is not installed; using SDPA", warn=False)
        return "sdpa"
    if decode != "plain":
        fastpath.report(ATTENTION_NAME, False, "SDPA (its flash kernels) for the compiled decode step", warn=False)
        return "sdpa"
    fastpath.report(ATTENTION_NAME, True, "flash_attention_2")
    return "flash_attention_2"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
