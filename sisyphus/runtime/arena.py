"""Weights that take turns in one fixed piece of GPU memory: the `swap` memory strategy.

`swap` keeps one model's weights on the GPU at a time. Moving modules with `.to()` gives
their tensors new addresses on every swap, and the fast paths hold raw addresses (the TTS
CUDA graphs, the compiled ASR decode step): after a move they must be captured again, or
they silently stop being used. Here every adopted model's parameters and buffers become
views into segments of GPU memory that are allocated once and never move. A model comes in
by copying its bytes from a pinned host copy into the segments, one host-to-device copy;
parking a model costs nothing, since weights never change and the host copy is the master.
Graphs and compiled steps captured once stay valid for every later swap.

The views of a parked model point at bytes of whichever model came in last: only the
active model may run. The caller serialises activation and use (ModelSet's lock).
Segments are only ever added, so a bigger model joining later never moves anyone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)

ALIGN_BYTES = 256  # every tensor starts at a multiple of this (cuBLAS and vector loads like it)


@dataclass
class _Member:
    """One model's tensors in the arena: their byte ranges and the host master copy."""

    name: str
    nbytes: int
    used: dict[int, int] = field(default_factory=dict)  # segment index -> bytes this model uses there
    host: dict[int, torch.Tensor] = field(default_factory=dict)  # segment index -> host bytes


class WeightArena:
    """Segments of device memory shared by models that are never on the device together."""

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self._segments: list[torch.Tensor] = []
        self._members: dict[str, _Member] = {}
        self.active: str | None = None
        self.last_swap_s = 0.0

    @property
    def nbytes(self) -> int:
        """Device bytes the arena holds (the largest model, plus alignment)."""
        return sum(int(s.numel()) for s in self._segments)

    def members(self) -> list[str]:
        return list(self._members)

    def adopt(self, name: str, modules: Sequence[torch.nn.Module]) -> None:
        """Take a model's weights (on any device) into the arena; the model becomes active.

        Its parameters and buffers are replaced by views into the segments, so the modules
        run on the arena's device from now on; their old storage is freed once nothing else
        holds it. Tensors kept as plain module attributes (small tables, aliases of buffers)
        are moved to the device as they are.
        """
        if name in self._members:
            raise ValueError(f"{name} is already in the arena")
        groups = _unique_tensors(modules)
        slots = self._place([t for t, _ in groups])
        member = _Member(name, sum(n for _, _, n in slots))
        for (tensor, _), (segment, offset, size) in zip(groups, slots, strict=True):
            member.used[segment] = max(member.used.get(segment, 0), offset + size)
        pin = self.device.type == "cuda"
        for segment, used in member.used.items():
            member.host[segment] = _host_bytes(used, pin)
        for (tensor, refs), (segment, offset, size) in zip(groups, slots, strict=True):
            member.host[segment][offset : offset + size].copy_(_as_bytes(tensor))
            view = self._segments[segment][offset : offset + size].view(tensor.dtype).view(tensor.shape)
            _repoint(tensor, refs, view)
        _move_plain_tensors(modules, self.device)
        self._members[name] = member
        self.active = None
        self.activate(name)
        log.info("arena: %s adopted (%.2f GB; arena %.2f GB on %s)", name, member.nbytes / 1e9, self.nbytes / 1e9,
                 self.device)

    def activate(self, name: str) -> bool:
        """Copy `name`'s weights into the segments (no-op when it is already there); True if copied."""
        if self.active == name:
            return False
        member = self._members[name]
        started = time.perf_counter()
        for segment, host in member.host.items():
            self._segments[segment][: host.numel()].copy_(host, non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.active = name
        self.last_swap_s = time.perf_counter() - started
        log.debug("arena: %s in (%.2f GB in %.0f ms)", name, member.nbytes / 1e9, self.last_swap_s * 1000)
        return True

    def _place(self, tensors: list[torch.Tensor]) -> list[tuple[int, int, int]]:
        """(segment, offset, bytes) for each tensor, first fit in segment order; adds one
        segment for whatever does not fit in the existing ones."""
        sizes = [int(s.numel()) for s in self._segments]
        left = sum(_aligned(_nbytes(t)) for t in tensors)
        slots, segment, offset = [], 0, 0
        for tensor in tensors:
            size = _nbytes(tensor)
            while True:
                if segment == len(sizes):
                    sizes.append(left)  # everything still to place fits in one new segment
                if offset + size <= sizes[segment]:
                    break
                segment, offset = segment + 1, 0
            slots.append((segment, offset, size))
            offset += _aligned(size)
            left -= _aligned(size)
        for size in sizes[len(self._segments) :]:
            self._segments.append(torch.empty(size, dtype=torch.uint8, device=self.device))
        return slots


def _unique_tensors(modules: Sequence[torch.nn.Module]) -> list[tuple[torch.Tensor, list[tuple[torch.nn.Module, str, bool]]]]:
    """Every parameter and buffer once (tied weights are one tensor), with where it is referenced."""
    seen: dict[int, tuple[torch.Tensor, list[tuple[torch.nn.Module, str, bool]]]] = {}
    for root in modules:
        for module in root.modules():
            for key, tensor in list(module._parameters.items()) + list(module._buffers.items()):
                if tensor is None:
                    continue
                entry = seen.setdefault(id(tensor), (tensor, []))
                entry[1].append((module, key, key in module._parameters))
    return list(seen.values())


def _repoint(tensor: torch.Tensor, refs: list[tuple[torch.nn.Module, str, bool]], view: torch.Tensor) -> None:
    """Make every reference to `tensor` see `view`; a parameter keeps its identity where the
    tensor types allow (CPU to CUDA), as `Module.to()` does."""
    if isinstance(tensor, torch.nn.Parameter):
        if torch._has_compatible_shallow_copy_type(tensor, view):
            tensor.data = view
            return
        view = torch.nn.Parameter(view, requires_grad=tensor.requires_grad)
    for module, key, is_parameter in refs:
        (module._parameters if is_parameter else module._buffers)[key] = view


def _move_plain_tensors(modules: Sequence[torch.nn.Module], device: torch.device) -> None:
    for root in modules:
        for module in root.modules():
            for key, value in list(vars(module).items()):
                if isinstance(value, torch.Tensor) and value.device != device:
                    setattr(module, key, value.to(device))


def _as_bytes(tensor: torch.Tensor) -> torch.Tensor:
    flat = tensor.detach().contiguous().reshape(-1)
    return flat.view(torch.uint8) if flat.dtype != torch.uint8 else flat


def _host_bytes(nbytes: int, pin: bool) -> torch.Tensor:
    if pin:
        try:
            return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        except RuntimeError as exc:  # pinned memory can be limited (containers, Windows)
            log.warning("arena: pinned host memory unavailable (%s); swaps will be slower", str(exc).splitlines()[0])
    return torch.empty(nbytes, dtype=torch.uint8)


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN_BYTES) * ALIGN_BYTES
