"""GLM-ASR-Nano-2512 in process, through transformers' own GlmAsr classes.

The official checkpoint loads unchanged with `GlmAsrForConditionalGeneration` and
`GlmAsrProcessor`; the request is built by the processor's `apply_transcription_request`
(the model's chat template with its default transcription prompt), so the prompt is the
one the model was trained on. Decoding is greedy with the KV cache and a token budget that
grows with the audio length, so a confused model cannot run for long. One engine is used
by one worker thread at a time (a lock guards it anyway).
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

from sisyphus.asr.checkpoint import read_config, require_files, resolve_model_folder, weight_files
from sisyphus.errors import ConfigError, ModelError
from sisyphus.frames import MIC_RATE_HZ

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


def pick_dtype(device: str, requested: str) -> torch.dtype:
    """The compute dtype for a device: "auto" is bf16 on CUDA (fp16 on GPUs without bf16), fp32 on CPU.

    An explicit "bf16" on a CUDA device without bf16 falls back to fp16 with a warning,
    because refusing to start is worse than a slightly different precision.
    """
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if requested not in (*names, "auto"):
        raise ConfigError(f"dtype: must be one of auto, bf16, fp16, fp32, got {requested!r}", "fix --dtype")
    on_cuda = device.startswith("cuda")
    if requested == "auto":
        if not on_cuda:
            return torch.float32
        return torch.bfloat16 if _cuda_has_bf16(device) else torch.float16
    if requested == "bf16" and on_cuda and not _cuda_has_bf16(device):
        log.warning("%s does not support bf16; using fp16", device)
        return torch.float16
    return names[requested]


def _cuda_has_bf16(device: str) -> bool:
    index = torch.device(device).index
    major, _ = torch.cuda.get_device_capability(index if index is not None else torch.cuda.current_device())
    return major >= 8


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device} requested but CUDA is not available", "use --device cpu")
    return device


class GlmAsrEngine:
    """A loaded GLM-ASR model and processor on one device; implements SpeechRecognizer."""

    def __init__(
        self, model: torch.nn.Module, processor: Any, *, device: str, dtype: torch.dtype, folder: Path
    ) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.folder = folder
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        repo_or_folder: str,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        cache_dir: str | None = None,
    ) -> GlmAsrEngine:
        """Load from a local folder or a Hub repo already in the local cache (never downloads)."""
        folder = resolve_model_folder(repo_or_folder, what=WHAT, pull_hint=PULL_HINT, cache_dir=cache_dir)
        _check_folder(folder)
        device = _resolve_device(device)
        dtype = dtype or pick_dtype(device, "auto")
        started = time.perf_counter()
        processor = _load_processor(folder)
        model = _load_model(folder, device, dtype)
        log.info("loaded %s from %s on %s in %s (%.1f s)", WHAT, folder, device, dtype, time.perf_counter() - started)
        return cls(model, processor, device=device, dtype=dtype, folder=folder)

    def to(self, device: str) -> GlmAsrEngine:
        """Move the weights (the `swap` memory strategy parks the idle model on the CPU)."""
        with self._lock:
            self.model.to(device)
            self.device = str(device)
        return self

    def transcribe(self, samples_16k: np.ndarray) -> str:
        """The text of one utterance; "" for empty or too-short audio."""
        return self.decode(self.generate_ids(samples_16k))

    def generate_ids(self, samples_16k: np.ndarray, max_new_tokens: int | None = None) -> list[int]:
        """The ids generated after the prompt (an end token included when the model emitted one).

        Public so callers can inspect or re-decode what `transcribe` saw; `max_new_tokens`
        overrides the length-based budget (warm-up uses a tiny one).
        """
        audio = _as_audio(samples_16k)
        if audio.size < MIN_AUDIO_S * MIC_RATE_HZ:
            return []
        budget = max_new_tokens or new_token_budget(audio.size / MIC_RATE_HZ)
        with self._lock, torch.inference_mode():
            inputs = self.processor.apply_transcription_request(audio)
            inputs = inputs.to(self.device, dtype=self.dtype)
            prompt_len = inputs["input_ids"].shape[1]
            output = self.model.generate(
                **inputs,
                do_sample=False,
                num_beams=1,
                max_new_tokens=budget,
                use_cache=True,
                pad_token_id=self.processor.tokenizer.pad_token_id,
            )
        return output[0, prompt_len:].tolist()

    def decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self.processor.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def warmup(self) -> None:
        """One short generate, so kernels, allocator pools and caches exist before the first turn."""
        noise = np.random.default_rng(0).normal(0.0, 1e-3, int(WARMUP_AUDIO_S * MIC_RATE_HZ)).astype(np.float32)
        started = time.perf_counter()
        self.generate_ids(noise, max_new_tokens=4)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
        log.info("%s warmed up in %.2f s", WHAT, time.perf_counter() - started)


def new_token_budget(duration_s: float) -> int:
    return min(MAX_NEW_TOKENS, BASE_NEW_TOKENS + math.ceil(NEW_TOKENS_PER_S * duration_s))


def _as_audio(samples: np.ndarray) -> np.ndarray:
    audio = np.asarray(samples)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D samples), got shape {audio.shape}")
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


def _load_model(folder: Path, device: str, dtype: torch.dtype) -> torch.nn.Module:
    from safetensors import SafetensorError
    from transformers import GlmAsrForConditionalGeneration

    try:
        model, info = GlmAsrForConditionalGeneration.from_pretrained(folder, dtype=dtype, output_loading_info=True)
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
