"""Which torch device and dtype the models run on, and why CUDA is (not) usable.

`cuda_status()` turns torch's silent `is_available() == False` into a reason and a fix
(a CPU-only wheel, no driver, a driver too old, no visible GPU), because "CUDA not
available" alone sends users searching. Devices are normalised to "cpu" or "cuda:N" so
every model of a session agrees on one spelling.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from sisyphus.errors import ConfigError

log = logging.getLogger(__name__)

_TORCH_INDEX = "https://download.pytorch.org/whl"
# A command inside a fix is printed on its own line, indented by this much, so an
# 80-column terminal never wraps it in the middle.
FIX_INDENT = "      "
_CUDA_WHEEL = "cu128"  # a CUDA build current drivers (>= 570) run; older drivers need cu118/cu121
_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class CudaStatus:
    available: bool
    device_name: str | None  # of cuda:0
    capability: tuple[int, int] | None  # compute capability of cuda:0, e.g. (8, 6)
    torch_version: str
    cuda_version: str | None  # the CUDA torch was built with; None for a CPU-only build
    reason: str  # why CUDA is unavailable ("" when available)
    fix: str  # what to do about it ("" when available)
    device_count: int = 0

    def describe(self) -> str:
        """One line for `sisyphus devices` and the UI header."""
        if self.available and self.capability:
            major, minor = self.capability
            return (
                f"CUDA: {self.device_name} (compute {major}.{minor}), "
                f"torch {self.torch_version}, CUDA {self.cuda_version}"
            )
        fix = " ".join(self.fix.split())
        return f"CUDA unavailable: {self.reason} (torch {self.torch_version})" + (f". Fix: {fix}" if fix else "")


def cuda_status() -> CudaStatus:
    """Probe CUDA once; never raises."""
    torch_version = torch.__version__
    cuda_version = torch.version.cuda
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        count = torch.cuda.device_count()
        return CudaStatus(
            True,
            torch.cuda.get_device_name(0),
            tuple(torch.cuda.get_device_capability(0)),  # type: ignore[arg-type]
            torch_version,
            cuda_version,
            "",
            "",
            count,
        )
    warning_text = " ".join(" ".join(str(w.message).split()) for w in caught)
    reason, fix = _why_unavailable(torch_version, cuda_version, warning_text)
    return CudaStatus(False, None, None, torch_version, cuda_version, reason, fix)


def cuda_install_command(torch_version: str) -> str:
    """The same torch version's CUDA build; short enough for one 80-column line (72 chars)."""
    base_version = torch_version.split("+")[0]
    return f"pip install torch=={base_version}+{_CUDA_WHEEL} -i {_TORCH_INDEX}/{_CUDA_WHEEL}"


def _why_unavailable(torch_version: str, cuda_version: str | None, warning_text: str) -> tuple[str, str]:
    if cuda_version is None:
        if not _driver_present():  # no NVIDIA GPU here: a CUDA build would not help
            return (f"no NVIDIA driver found, and this PyTorch ({torch_version}) is a CPU-only build", "")
        return (
            f"this PyTorch ({torch_version}) is a CPU-only build",
            f"install the CUDA build of torch:\n{FIX_INDENT}{cuda_install_command(torch_version)}",
        )
    if not _driver_present():
        return (
            "no NVIDIA driver found (no /proc/driver/nvidia/version, no nvidia-smi)",
            "install the NVIDIA driver for your GPU, reboot, and check that `nvidia-smi` works",
        )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return (f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU", "unset CUDA_VISIBLE_DEVICES")
    if warning_text:
        return (
            f"the driver refused CUDA {cuda_version}: {warning_text[:200]}",
            f"update the NVIDIA driver, or install a torch built for an older CUDA from {_TORCH_INDEX}",
        )
    return (
        f"torch (CUDA {cuda_version}) sees no usable GPU",
        "check `nvidia-smi`, CUDA_VISIBLE_DEVICES and that the driver supports this CUDA version",
    )


def _driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def pick_device(spec: str) -> str:
    """auto → cuda if usable, else cpu; an explicit cuda / cuda:N must exist."""
    text = (spec or "auto").strip().lower()
    if text == "cpu":
        return "cpu"
    if text == "auto":
        status = cuda_status()
        if status.available:
            return "cuda:0"
        log.info("running on the CPU: %s", status.reason)
        return "cpu"
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        index = int(text[5:]) if ":" in text else 0
        status = cuda_status()
        if not status.available:
            fix = " ".join(status.fix.split())
            raise ConfigError(f"device {spec}: {status.reason}", f"{fix}, or use --device cpu" if fix else "use --device cpu")
        if index >= status.device_count:
            raise ConfigError(
                f"device {spec}: only {status.device_count} CUDA device(s) visible",
                f"use cuda:0 .. cuda:{status.device_count - 1}",
            )
        return f"cuda:{index}"
    raise ConfigError(f"device: must be auto, cpu, cuda or cuda:N, got {spec!r}", "fix --device or SISYPHUS_DEVICE")


BF16_MIN_CAPABILITY = (8, 0)
"""Ampere (8.0) and later have bf16 tensor cores. Below that, torch (2.11 and later) still
reports bf16 as supported because it can emulate it, slowly: such cards get fp16."""


def auto_dtype(capability: tuple[int, int] | None) -> torch.dtype:
    """The dtype `auto` means for a card of this compute capability; None is the CPU."""
    if capability is None:
        return torch.float32
    return torch.bfloat16 if tuple(capability) >= BF16_MIN_CAPABILITY else torch.float16


def cuda_index(device: str) -> int:
    """N of "cuda:N"; a bare "cuda" is cuda:0, as `pick_device` spells it."""
    head, _, index = device.partition(":")
    return int(index) if head == "cuda" and index.isdigit() else 0


def pick_dtype(device: str, spec: str) -> torch.dtype:
    """auto: bf16 where the chosen card has it natively, fp16 on older cards, fp32 on the CPU.

    The capability is asked of the chosen `cuda:N`, not of the current device, and
    `torch.cuda.is_bf16_supported()` is not used: it counts emulated bf16 as support.
    """
    text = (spec or "auto").strip().lower()
    capability = None
    if device.startswith("cuda"):
        capability = tuple(torch.cuda.get_device_capability(cuda_index(device)))
    if text == "auto":
        return auto_dtype(capability)  # type: ignore[arg-type]
    if text not in _DTYPES:
        raise ConfigError(f"dtype: must be auto, bf16, fp16 or fp32, got {spec!r}", "fix --dtype or SISYPHUS_DTYPE")
    dtype = _DTYPES[text]
    if device == "cpu" and dtype is torch.float16:
        log.warning("fp16 on the CPU is slow and poorly supported; fp32 or bf16 is better")
    if capability is not None and dtype is torch.bfloat16 and capability < BF16_MIN_CAPABILITY:
        log.warning("bf16 on %s (compute %d.%d) is emulated and slow; fp16 (or auto) runs natively",
                    device, *capability)
    return dtype
