"""Memory figures, taken after every other stage: peak RSS and peak GPU memory of the run.

The peaks cover loading and every stage with all loaded models resident together (the
bench shares one ModelSet), which is what a `talk` session with the resident strategy
needs at most. GPU figures are torch's own peaks: allocated (live tensors) and reserved
(what the caching allocator took from the driver, the number that decides out-of-memory).
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


def run(ctx: BenchContext) -> None:
    loaded = ctx.models.loaded()
    resident = ", ".join(loaded) if loaded else "no models"
    ctx.report.add("memory", "peak RSS", "GB", [peak_rss_bytes() / GB], note=f"resident: {resident}")
    if ctx.on_cuda:
        import torch

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
