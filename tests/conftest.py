"""Shared fixtures: tiny model checkpoints written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_glmasr_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sisyphus.asr.synthetic import write_tiny_glmasr

    return write_tiny_glmasr(tmp_path_factory.mktemp("glmasr") / "GLM-ASR-tiny")


@pytest.fixture(scope="session")
def tiny_tts_custom_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tts.support import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tts") / "Qwen3-TTS-tiny-CustomVoice", kind="custom_voice")


@pytest.fixture(scope="session")
def tiny_tts_base_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tts.support import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tts") / "Qwen3-TTS-tiny-Base", kind="base")


SERIAL_FILES = ("test_talk_tmux.py",)  # a real terminal, timed keystrokes


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on real-time devices (`audio`, the tmux terminal) are marked `serial`: tests/run.sh
    runs them alone after the parallel part, where no other test competes for the CPU.
    Tests marked `cuda` are skipped where no CUDA GPU is usable (CI); gpu_check.sh runs them."""
    for item in items:
        if item.get_closest_marker("audio") or item.path.name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
