"""What the CLI prints on the terminals people have: help without `<bool>`, CUDA advice
only where it can help and never wrapped mid-command at 80 columns, output redirected
to a file on Windows (cp1252), and `--debug` without third-party compiler chatter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.e2e.harness import REPO, talk_env

COMMANDS = [["talk"], ["devices"], ["doctor"], ["models", "pull"], ["models", "list"], ["voices", "clone"],
            ["voices", "list"], ["voices", "delete"], ["voices", "say"], ["bench"], []]  # fmt: skip


def sisyphus(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**talk_env(tmp_path), "PULSE_SERVER": "unix:/nonexistent", "XDG_RUNTIME_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-m", "sisyphus.cli", *args], cwd=REPO, env=environment, capture_output=True,
        encoding=env.get("PYTHONIOENCODING", "utf-8"), timeout=300, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "sisyphus")
def test_flags_show_no_value_type_in_help(tmp_path, command):
    result = sisyphus(tmp_path, *command, "--help", COLUMNS="120")
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout and "BOOLEAN" not in result.stdout, result.stdout
    assert re.search(r"--help +Show this message", result.stdout)
    if command == ["talk"]:
        assert re.search(r"--text +Type instead of speak", result.stdout)
        assert re.search(r"--input +-i +<path> +Audio file", result.stdout)  # options with values keep it


def cuda_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "CUDA" in line or "pip install" in line or "→" in line]


needs_cpu_torch = pytest.mark.skipif(torch.version.cuda is not None, reason="the advice for a CPU-only torch build")
no_driver = Path("/proc/driver/nvidia/version").exists()


@needs_cpu_torch
@pytest.mark.skipif(no_driver, reason="this machine has an NVIDIA driver")
def test_without_an_nvidia_driver_no_cuda_build_is_advised(tmp_path):
    for command in (["devices"], ["doctor", "--config", str(tmp_path / "none.yaml")]):
        (tmp_path / "none.yaml").write_text("llm:\n  base_url: http://127.0.0.1:9/v1\n")
        result = sisyphus(tmp_path, *command, COLUMNS="80", PATH="/usr/bin:/bin")
        assert "no NVIDIA driver found" in result.stdout, result.stdout
        assert "pip install" not in result.stdout and "CUDA build" not in result.stdout, cuda_lines(result.stdout)


@needs_cpu_torch
def test_with_a_driver_the_install_command_stands_whole_on_its_own_line(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI 570.00'\n")
    (fake / "nvidia-smi").chmod(0o755)
    (tmp_path / "none.yaml").write_text("llm:\n  base_url: http://127.0.0.1:9/v1\n")
    base = torch.__version__.split("+")[0]
    command = f"pip install torch=={base}+cu128 -i https://download.pytorch.org/whl/cu128"
    for args in (["devices"], ["doctor", "--config", str(tmp_path / "none.yaml")]):
        result = sisyphus(tmp_path, *args, COLUMNS="80", PATH=f"{fake}:/usr/bin:/bin")
        lines = result.stdout.splitlines()
        assert "    → install the CUDA build of torch:" in lines, cuda_lines(result.stdout)
        assert f"      {command}" in lines, cuda_lines(result.stdout)
        assert max(len(line) for line in lines) <= 80


def test_output_redirected_as_cp1252_never_ends_in_a_traceback(tmp_path):
    """Windows writes a redirected stdout/stderr in the ANSI code page: no ✓, → or •."""
    (tmp_path / "bad.yaml").write_text("memory: lots\nvad: 3\n")
    (tmp_path / "ok.yaml").write_text("llm:\n  base_url: http://127.0.0.1:9/v1\n")
    runs = [
        (["talk", "--config", str(tmp_path / "bad.yaml"), "--text"], 2),
        (["doctor", "--config", str(tmp_path / "ok.yaml")], 1),
        (["talk", "--help"], 0),
        (["devices"], 0),
    ]
    for args, code in runs:
        result = sisyphus(tmp_path, *args, PYTHONIOENCODING="cp1252")
        assert result.returncode == code, (args, result.stderr[-1500:])
        assert "Traceback" not in result.stderr and "UnicodeEncodeError" not in result.stderr
    bad = sisyphus(tmp_path, "talk", "--config", str(tmp_path / "bad.yaml"), "--text", PYTHONIOENCODING="cp1252")
    assert "memory: must be one of 'resident', 'lazy-tts', 'swap', got 'lots'" in bad.stderr


def test_debug_keeps_third_party_loggers_at_info_unless_asked(tmp_path):
    """asyncio logs its selector at DEBUG: the cheapest third-party DEBUG record to provoke."""
    (tmp_path / "none.yaml").write_text("llm:\n  base_url: http://127.0.0.1:9/v1\n")
    args = ["--debug", "doctor", "--config", str(tmp_path / "none.yaml")]
    quiet = sisyphus(tmp_path, *args)
    assert "DEBUG asyncio" not in quiet.stderr
    assert quiet.returncode == 1 and "LLM endpoint" in quiet.stdout  # the command itself ran
    asked = sisyphus(tmp_path, *args, SISYPHUS_DEBUG_LOGGERS="asyncio, numba")
    assert "DEBUG asyncio: Using selector" in asked.stderr
