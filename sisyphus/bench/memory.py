"""Memory figures, taken after every other stage: peak RSS and peak GPU memory of the run.

The peaks cover loading and every stage with all loaded models resident together (the
bench shares one ModelSet), which is what a `talk` session with the resident strategy
needs at most. On a GPU the headline is the process's own GPU memory as the driver counts
it, CUDA context and libraries included (what decides whether a card is big enough), taken
twice: once with ASR and one TTS model resident (the configuration the README promises;
the tts stage calls `checkpoint` before it loads the Base model) and once at the end with
everything loaded. torch's own peaks, allocated (live tensors) and reserved (what its
caching allocator took), come beside it.
"""

from __future__ import annotations

import sys

from sisyphus.bench.context import BenchContext

GB = 1e9


def peak_rss_bytes() -> int:
    """The process's peak resident set since it started (current RSS where no peak is kept)."""
    try:
        import resource
    except ImportError:  # Windows keeps the peak working set instead
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB elsewhere


def checkpoint(ctx: BenchContext) -> None:
    """The process's GPU memory peak so far, labelled with the models loaded now (CUDA only)."""
    if not ctx.on_cuda:
        return
    from sisyphus.runtime.memory import ProcessGpuMemory

    usage = ProcessGpuMemory.read(ctx.device, ctx.gpu_baseline_bytes)
    loaded = ", ".join(ctx.models.loaded()) or "no models"
    if usage is None:
        ctx.report.note("memory", f"process GPU memory unreadable with {loaded} loaded (no NVML, no nvidia-smi)")
        return
    ctx.report.add("memory", f"process GPU peak ({loaded})", "GB", [usage.peak_bytes / GB],
                   note=f"CUDA context included; {usage.source}",
                   meta={"now_gb": usage.now_bytes / GB, "source": usage.source, "models": ctx.models.loaded()})


def run(ctx: BenchContext) -> None:
    loaded = ctx.models.loaded()
    resident = ", ".join(loaded) if loaded else "no models"
    ctx.report.add("memory", "peak RSS", "GB", [peak_rss_bytes() / GB], note=f"resident: {resident}")
    if ctx.on_cuda:
        import torch

        checkpoint(ctx)
        if torch.cuda.is_initialized():
            device = torch.device(ctx.device)
            ctx.report.add("memory", "peak GPU allocated", "GB", [torch.cuda.max_memory_allocated(device) / GB],
                           note=f"resident: {resident}")
            ctx.report.add("memory", "peak GPU reserved", "GB", [torch.cuda.max_memory_reserved(device) / GB],
                           note=f"resident: {resident}")
    else:
        ctx.report.note("memory", f"no GPU figures: the run was on {ctx.device}")
    if ctx.models.load_seconds:
        loads = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in ctx.models.load_seconds.items())
        ctx.report.note("memory", f"model load times (with warm-up): {loads}")
