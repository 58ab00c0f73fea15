"""Timing that means what it says: warm-up first, then repeats, CUDA synchronised around the clock.

CUDA kernels run asynchronously, so reading the clock right after a call measures only
the launch; `Stopwatch` synchronises the device before starting and before stopping.
Warm-up runs are timed the same way and thrown away: first calls pay for allocator
growth, kernel selection and lazy initialisation that a running assistant paid once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def synchronize(device: str) -> None:
    """Wait for queued GPU work; a no-op on the CPU (and when CUDA was never initialised)."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_initialized():
            torch.cuda.synchronize(device)


def timed(device: str, func: Callable[[], T]) -> tuple[float, T]:
    """Seconds `func` took, measured between two device synchronisations, and its result."""
    synchronize(device)
    started = time.perf_counter()
    result = func()
    synchronize(device)
    return time.perf_counter() - started, result


def repeat(warmup: int, repeats: int, run: Callable[[], T]) -> list[T]:
    """Call `run` warmup + repeats times; keep the results of the repeats only."""
    for _ in range(warmup):
        run()
    return [run() for _ in range(repeats)]


def median(values: list[float]) -> float:
    return float(np.median(values))


def p90(values: list[float]) -> float:
    """The 90th percentile as numpy interpolates it (linear), like the report's figures."""
    return float(np.percentile(values, 90))
