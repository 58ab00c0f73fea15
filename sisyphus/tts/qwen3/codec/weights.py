"""Strict loading and saving of safetensors checkpoints in the official layout.

A checkpoint must hold exactly the tensors the module declares, with the declared shapes:
a missing, extra or mis-shaped tensor means a wrong or damaged download, and loading it
quietly would produce noise instead of speech. The error names the offending tensors.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sisyphus.errors import ModelError

log = logging.getLogger(__name__)

_HINT = "re-download the model (`sisyphus models pull`) or point models.yaml at an official checkpoint"


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: str
) -> None:
    """Raise ModelError naming missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = sorted(
        f"{k} {tuple(found[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in set(expected) & set(found)
        if tuple(found[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing tensors: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_names(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped tensors: {_names(misshaped)}")
    if problems:
        raise ModelError(f"{source} does not match the model: " + "; ".join(problems), _HINT)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}", _HINT)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", _HINT) from exc


def load_strict(
    module: nn.Module,
    tensors: dict[str, torch.Tensor],
    source: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
) -> None:
    """Load `tensors` into `module` (built on the meta device) after checking the layout."""
    check_state_dict(module.state_dict(), tensors, source)
    converted = {
        k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
        for k, v in tensors.items()
    }
    module.load_state_dict(converted, strict=True, assign=True)


def save_safetensors(module: nn.Module, path: Path) -> None:
    """Write the module's tensors (contiguous, unshared copies).

    No metadata header, like the published speech tokenizer file: with the same tensors
    a full-size random checkpoint then has the official file's exact byte size.
    """
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    save_file(tensors, str(path))
    log.debug("wrote %d tensors to %s", len(tensors), path)
