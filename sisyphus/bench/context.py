"""What every bench stage gets: the config, the device, the shared models and the report.

One ModelSet is shared by all stages, so ASR and both TTS models stay resident together
as they do in `talk` (memory figures then describe a real session), and a model loaded
by the asr stage is not loaded again by the pipeline stage.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from sisyphus.agent.models import ModelSet
from sisyphus.bench.report import BenchReport
from sisyphus.config import Config


@dataclass
class BenchContext:
    config: Config  # models.* point at the folders actually used (random ones with --random-weights)
    device: str  # "cpu" or "cuda:N"
    dtype: torch.dtype
    repeats: int  # timed runs per figure, after the warm-up
    warmup: int  # untimed runs before them
    random_weights: bool  # True: generation lengths must be forced (random weights never stop)
    size: str  # "full" | "reduced" | "tiny" (random weights) or "real"
    report: BenchReport
    models: ModelSet  # loaded once, reused by every stage
    vad_seconds: float = 10.0  # audio pushed through the endpointer by the vad stage
    turn_taking: bool = True  # pipeline: also run with semantic end of turn and prepared replies
    gpu_baseline_bytes: int | None = None  # card memory in use before the run touched CUDA
    say: Callable[[str], None] = field(default=lambda text: None)  # progress lines (stderr)

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def environment(ctx: BenchContext) -> dict[str, Any]:
    """Everything needed to tell whether two reports are comparable."""
    import transformers

    models = ctx.config.models
    gpu = torch.cuda.get_device_name(torch.device(ctx.device)) if ctx.on_cuda else None
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": ctx.device,
        "gpu_name": gpu,
        "dtype": dtype_name(ctx.dtype),
        "random_weights": ctx.random_weights,
        "size": ctx.size,
        "repeats": ctx.repeats,
        "warmup": ctx.warmup,
        "models": {"asr": models.asr, "tts_custom": models.tts_custom, "tts_base": models.tts_base},
        "remote": {key: getattr(ctx.config.remote, f"{key}_url") for key in ("asr", "tts_custom", "tts_base")
                   if getattr(ctx.config.remote, f"{key}_url")},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
