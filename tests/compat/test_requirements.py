"""The compatibility envs pin torch and transformers to exactly the lower bounds pyproject.toml states."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("requirements.py")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def requirements(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_oldest_env_pins_the_stated_lower_bounds():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    lines = requirements()
    bounds = {r.split(">=")[0]: r.split(">=")[1].split(",")[0] for r in declared if r.startswith(("torch>=", "transformers>="))}
    assert set(bounds) == {"torch", "transformers"}
    assert f"torch=={bounds['torch']}" in lines and f"transformers=={bounds['transformers']}" in lines
    # Everything else is passed on as declared, markers included.
    assert sorted(lines) == sorted([f"{n}=={v}" for n, v in bounds.items()] + [r for r in declared if r.split(">=")[0] not in bounds])


def test_overrides_replace_the_pins():
    lines = requirements("transformers==5.17.0", "torch==2.13.0")
    assert "transformers==5.17.0" in lines and "torch==2.13.0" in lines
    assert not any(line.startswith(("torch>", "transformers>")) for line in lines)
