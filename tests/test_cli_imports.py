"""The CLI starts where the heavy and optional packages are missing.

The GPU machine has no soundfile, librosa, sounddevice, silero-vad or openai, and a user
without a GPU stack should still get `--help`. A finder at the front of `sys.meta_path`
makes each blocked module raise ImportError, as a missing package would; the CLI then
runs in a fresh interpreter exactly as `python -m sisyphus.cli` does.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.harness import REPO

# What the GPU machine lacks (../shared/gpu/README.md; pydantic aside: newer typer imports it
# itself), plus the heavy ones a CLI start must not pay for.
BLOCKED = ("soundfile", "sounddevice", "librosa", "soxr", "silero_vad", "openai", "torch", "transformers")

_RUNNER = """
import importlib.abc, runpy, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for the test: {name}")
        return None
sys.meta_path.insert(0, Blocker())
sys.argv = ["sisyphus", *sys.argv[2:]]
try:
    runpy.run_module("sisyphus.cli", run_name="__main__", alter_sys=True)
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("LOADED:" + ",".join(loaded), file=sys.stderr)
"""


def run_cli_without_heavy_modules(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SISYPHUS_CONFIG": str(REPO / "models.yaml")}
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, ",".join(BLOCKED), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_blocker_blocks() -> None:
    """Guards the test itself: a command that needs torch must fail under the blocker."""
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER.replace('runpy.run_module("sisyphus.cli", run_name="__main__", alter_sys=True)',
                                               "import sisyphus.runtime.device"), ",".join(BLOCKED)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "blocked for the test: torch" in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["bench", "--help"], ["voices", "--help"], ["voices", "say", "--help"]])
def test_help_needs_no_heavy_modules(args: list[str]) -> None:
    result = run_cli_without_heavy_modules(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "LOADED:"


def test_bench_reaches_its_own_checks_without_heavy_modules() -> None:
    """`bench` imports its runner and reads the config before any stage needs a model."""
    result = run_cli_without_heavy_modules("bench", "warp")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: unknown bench stage 'warp'; valid stages: vad, turn, asr, tts, llm, pipeline")
    assert lines[-1] == "LOADED:"
