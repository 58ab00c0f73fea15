"""Tiny Qwen3-TTS checkpoints for tests: the official folder layout with random weights.

`write_tiny_checkpoint` writes config.json / generation_config.json (official, shrunk
unless shrink=False), the synthetic text tokenizer (official special-token ids), random
talker (+ speaker encoder on Base) weights and a random shrunk speech tokenizer. Loading
it with `Qwen3TTS.from_pretrained(folder)` runs every real code path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sisyphus.tts.qwen3.codec import TINY_SHRINK, SpeechTokenizer
from sisyphus.tts.qwen3.synthetic import OFFICIAL, REPOS, write_random_model


def write_tiny_checkpoint(folder: Path, kind: str = "custom_voice", size: str = "1b7", shrink: bool = True,
                          *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """Write a random model folder; kind "custom_voice" | "base", size "1b7" | "0b6"."""
    folder = Path(folder)
    write_random_model(folder, kind, size, shrink=shrink, seed=seed, dtype=dtype)
    codec_src = OFFICIAL / REPOS[("base", "1b7")] / "speech_tokenizer"  # identical for all four models
    codec = SpeechTokenizer.random(codec_src, seed=seed + 1, shrink=TINY_SHRINK if shrink else None)
    codec.save_pretrained(folder / "speech_tokenizer")
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run op by op in microseconds; a second intra-op thread only adds
    synchronisation, and on a busy 2-core machine it turns milliseconds into seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
