"""Plain-data stand-ins for what sisyphus.runtime hands the UI, and a settable clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

GIB = 1 << 30


@dataclass(frozen=True)
class Cuda:
    """Same fields as sisyphus.runtime.device.CudaStatus."""

    available: bool
    device_name: str | None = None
    capability: tuple[int, int] | None = None
    torch_version: str = "2.13.0+cpu"
    cuda_version: str | None = None
    reason: str = ""
    fix: str = ""


@dataclass(frozen=True)
class Memory:
    """Same fields as sisyphus.runtime.memory.MemorySnapshot."""

    rss_bytes: int
    gpu_allocated_bytes: int | None = None
    gpu_reserved_bytes: int | None = None
    gpu_total_bytes: int | None = None


NO_CUDA = Cuda(
    available=False,
    reason="torch was built without CUDA",
    fix="pip install torch --index-url https://download.pytorch.org/whl/cu128",
)
RTX = Cuda(
    available=True,
    device_name="NVIDIA GeForce RTX 3060",
    capability=(8, 6),
    torch_version="2.4.0+cu121",
    cuda_version="12.1",
)
CPU_MEMORY = Memory(rss_bytes=int(1.2 * GIB))
GPU_MEMORY = Memory(
    rss_bytes=2 * GIB,
    gpu_allocated_bytes=int(8.4 * GIB),
    gpu_reserved_bytes=9 * GIB,
    gpu_total_bytes=12 * GIB,
)


class Clock:
    """datetime.now() that only moves when the test says so."""

    def __init__(self, start: datetime = datetime(2026, 1, 2, 12, 1, 2, 345000)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
