"""What the process uses right now: resident memory, and GPU memory once CUDA is in use.

The UI polls this every second or so, so it must be cheap and must not be the thing
that initialises CUDA (which alone costs a few hundred MB of GPU memory).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class MemorySnapshot:
    rss_bytes: int
    gpu_allocated_bytes: int | None = None  # tensors torch holds (None: CUDA not in use)
    gpu_reserved_bytes: int | None = None  # what torch's caching allocator took from the driver
    gpu_total_bytes: int | None = None  # the card's memory

    def describe(self) -> str:
        """A compact line for the UI, e.g. `RSS 2.1 GB · GPU 7.9/8.4/12.0 GB`."""
        text = f"RSS {_gb(self.rss_bytes)}"
        if self.gpu_total_bytes is not None:
            text += (
                f" · GPU {_gb(self.gpu_allocated_bytes or 0, unit=False)}/"
                f"{_gb(self.gpu_reserved_bytes or 0, unit=False)}/{_gb(self.gpu_total_bytes)}"
                " (alloc/reserved/total)"
            )
        return text


def memory_snapshot(device: str | None = None) -> MemorySnapshot:
    """RSS always; GPU numbers for `device` (default: cuda:0) only if CUDA is initialised."""
    rss = psutil.Process().memory_info().rss
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return MemorySnapshot(rss)
    index = _cuda_index(device)
    return MemorySnapshot(
        rss,
        int(torch.cuda.memory_allocated(index)),
        int(torch.cuda.memory_reserved(index)),
        int(torch.cuda.get_device_properties(index).total_memory),
    )


def _cuda_index(device: str | None) -> int:
    if device and device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    return 0


def _gb(n_bytes: int, unit: bool = True) -> str:
    value = f"{n_bytes / 1e9:.1f}"
    return f"{value} GB" if unit else value
