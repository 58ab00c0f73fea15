"""Building the package says nothing deprecated, and its metadata carries the licence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PREPARE = """
import os, sys, setuptools.build_meta as backend
out = sys.argv[1]  # the backend rewrites sys.argv while it runs
name = backend.prepare_metadata_for_build_wheel(out)
print(open(os.path.join(out, name, "METADATA"), encoding="utf-8").read())
"""


def test_metadata_builds_without_deprecation_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PREPARE, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Deprecat" not in result.stderr and "deprecated" not in result.stderr, result.stderr[-3000:]
    assert "License-Expression: MIT" in result.stdout
