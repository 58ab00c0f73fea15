"""`sisyphus bench aec` as a user runs it: the real CLI, the real canceller, the virtual room when possible.

Echo reduction figures are asserted (they are what the canceller is for); speed is only
reported, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sisyphus.bench.room import room_available

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_bench_aec_reports_echo_reduction_on_both_paths_and_the_cost_per_frame(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.pop("SISYPHUS_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "sisyphus.cli", "bench", "aec", "--device", "cpu", "--json", str(tmp_path / "aec.json")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "aec.json").read_text())
    figures = {f["name"]: f for f in report["figures"] if f["stage"] == "aec"}
    frame = figures["per 10 ms frame"]
    assert frame["unit"] == "ms" and frame["n"] > 1000 and all(v > 0 for v in frame["values"])
    simulated = figures["echo reduction, simulated"]
    assert simulated["n"] == 8 and np.median(simulated["values"]) >= 25.0, simulated["values"]
    assert figures["user kept in double talk"]["values"][0] > -10.0  # the user is not cancelled with the echo
    if room_available():
        room = figures["echo reduction, virtual room"]
        assert room["n"] == 4 and np.median(room["values"]) >= 25.0, room["values"]
    else:
        assert any("virtual room skipped" in note for _, note in report.get("notes", []))
    assert "aec" in result.stdout and "echo reduction" in result.stdout
