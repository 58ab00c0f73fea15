"""What the process uses right now: resident memory, and GPU memory once CUDA is in use.

The UI polls this every second or so, so it must be cheap and must not be the thing
that initialises CUDA (which alone costs a few hundred MB of GPU memory).
"""

from __future__ import annotations

import os
import shutil
import subprocess
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


@dataclass(frozen=True)
class ProcessGpuMemory:
    """The process's own GPU memory, CUDA context and everything outside torch included.

    torch's allocator figures leave out the CUDA context, loaded kernels and library
    workspaces (several hundred MB); what decides whether a card is big enough is what the
    driver has given the process.
    """

    now_bytes: int  # the process's GPU memory at the time of reading
    peak_bytes: int  # now, less torch's current reservation, plus torch's peak reservation
    source: str  # how it was read

    @classmethod
    def read(cls, device: str, baseline_bytes: int | None) -> ProcessGpuMemory | None:
        """None when CUDA is not in use or nothing can read the driver's figures."""
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        index = _cuda_index(device)
        now, source = _nvml_process_bytes(index), "NVML, this process"
        if now is None and baseline_bytes is not None:
            free, total = torch.cuda.mem_get_info(index)
            now, source = total - free - baseline_bytes, "device memory in use less what was in use before the run"
        if now is None:
            return None
        reserved, peak_reserved = torch.cuda.memory_reserved(index), torch.cuda.max_memory_reserved(index)
        return cls(int(now), int(now - reserved + peak_reserved), source)


def device_used_bytes(device: str) -> int | None:
    """Memory in use on the card (every process), read through the driver without creating a
    CUDA context: taken before a run, it is what the run's own figure is measured from."""
    index = _nvml_index(_cuda_index(device))
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).used)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML binding or driver: ask nvidia-smi
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", str(index)],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return int(float(out.strip().splitlines()[0]) * 1024 * 1024)  # MiB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _nvml_process_bytes(index: int) -> int | None:
    """This process's GPU memory as the driver counts it; None where the driver does not list
    it (containers often see other process ids)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(_nvml_index(index))
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == os.getpid() and proc.usedGpuMemory:
                    return int(proc.usedGpuMemory)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no binding, no driver, no permission: the caller falls back
        return None
    return None


def _nvml_index(cuda_index: int) -> int:
    """NVML counts every GPU; CUDA only the visible ones, in CUDA_VISIBLE_DEVICES order."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if cuda_index < len(visible) and visible[cuda_index].isdigit():
        return int(visible[cuda_index])
    return cuda_index
