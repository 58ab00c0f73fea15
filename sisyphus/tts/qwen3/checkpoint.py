"""Reading, checking and writing the official checkpoint layout (model.safetensors).

Loading refuses a checkpoint whose tensors do not match the config exactly: the message
names the missing, unexpected and mis-shaped tensors. Random initialisation in the same
layout serves tests and benchmarks (real-size compute without downloading weights).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from sisyphus.errors import ModelError
from sisyphus.tts.qwen3.config import ModelConfig
from sisyphus.tts.qwen3.layers import Rotary
from sisyphus.tts.qwen3.talker import Qwen3TTSNet

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
SPEAKER_PREFIX = "speaker_encoder."


def build_speaker_encoder(cfg: ModelConfig) -> nn.Module | None:
    """The Base models' speaker encoder (ECAPA-TDNN), from the codec helper's module."""
    if cfg.kind != "base":
        return None
    from sisyphus.tts.qwen3.speaker import SpeakerEncoder

    return SpeakerEncoder.from_config(dict(cfg.speaker_encoder or {}))


def build_net(cfg: ModelConfig, device: torch.device | str = "meta") -> Qwen3TTSNet:
    """The talker is built on `device` (meta: no memory, no init cost); the small speaker
    encoder is always built for real on the CPU so its own buffers exist."""
    with torch.device(device):
        net = Qwen3TTSNet(cfg, None)
    speaker = build_speaker_encoder(cfg)
    if speaker is not None:
        net.speaker_encoder = speaker
    return net


def _weight_files(folder: Path) -> list[Path]:
    if (folder / WEIGHTS).exists():
        return [folder / WEIGHTS]
    if (folder / INDEX).exists():
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        return sorted({folder / name for name in index.get("weight_map", {}).values()})
    raise ModelError(f"no {WEIGHTS} in {folder}", "re-run `sisyphus models pull` for this model")


def _describe(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def verify_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], where: str) -> None:
    """Raise ModelError naming every missing, unexpected or mis-shaped tensor."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    bad = sorted(n for n in set(expected) & set(found) if tuple(expected[n]) != tuple(found[n]))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {_describe(unexpected)}")
    if bad:
        shapes = [f"{n} {tuple(found[n])} (expected {tuple(expected[n])})" for n in bad]
        problems.append(f"mis-shaped {len(bad)}: {_describe(shapes)}")
    if problems:
        raise ModelError(f"checkpoint {where} does not match its config: " + "; ".join(problems),
                         "the files are incomplete or from another model; re-run `sisyphus models pull`")


def load_net(folder: Path, cfg: ModelConfig, device: torch.device | str, dtype: torch.dtype) -> Qwen3TTSNet:
    from safetensors import safe_open

    net = build_net(cfg, "meta")
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    tensors: dict[str, torch.Tensor] = {}
    for path in _weight_files(folder):
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for name in f.keys():
                    tensors[name] = f.get_tensor(name)
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise ModelError(f"{path} cannot be read: {exc}", "re-run `sisyphus models pull`") from None
    verify_shapes(expected, {k: tuple(v.shape) for k, v in tensors.items()}, str(folder))
    speaker = {k[len(SPEAKER_PREFIX):]: v for k, v in tensors.items() if k.startswith(SPEAKER_PREFIX)}
    talker = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items() if not k.startswith(SPEAKER_PREFIX)}
    net.talker.load_state_dict({k[len("talker."):]: v for k, v in talker.items()}, strict=True, assign=True)
    if cfg.kind == "base":
        # The speaker encoder stays float32: it runs once per clone prompt, on mel features.
        net.speaker_encoder.load_state_dict({k: v.float() for k, v in speaker.items()}, strict=True)
        net.speaker_encoder.to(device)
    for module in net.modules():
        if isinstance(module, Rotary):
            module.reset(device)
    log.info("loaded %d tensors from %s", len(tensors), folder)
    return net.eval()


def random_state_dict(cfg: ModelConfig, seed: int, dtype: torch.dtype = torch.float32,
                      std: float = 0.02) -> dict[str, torch.Tensor]:
    """Random weights in the official layout (normal(0, std) matrices, unit norms, zero biases)."""
    net = build_net(cfg, "meta")
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, t in net.state_dict().items():
        if name.endswith("norm.weight") or name.endswith("_norm.weight"):
            out[name] = torch.ones(t.shape, dtype=dtype)
        elif name.endswith(".bias"):
            out[name] = torch.zeros(t.shape, dtype=dtype)
        else:
            out[name] = (torch.randn(t.shape, generator=gen) * std).to(dtype)
    return out
