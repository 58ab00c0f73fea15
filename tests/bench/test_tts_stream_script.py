"""`benchmarks/tts_stream.py --ours-only`: Sisyphus's side alone, for machines without network.

The comparison side needs the reference environment, which is built from the network on
first use; an offline GPU machine must still measure Sisyphus. The run here points that
environment at a folder that does not exist and checks it stays so, and that the usual
lines and JSON come out for Sisyphus alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "tts_stream.py"


def test_ours_only_measures_sisyphus_without_the_reference_environment(tmp_path):
    ref_venv = tmp_path / "qwen-tts-ref"
    out = tmp_path / "ts.json"
    env = dict(os.environ, SISYPHUS_REF_VENV=str(ref_venv), OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the script finds the repository by itself
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--ours-only", "--shrink", "--frames", "6", "--repeats", "2", "--threads", "1",
         "--cache", str(tmp_path / "cache"), "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert not ref_venv.exists()
    lines = done.stdout.splitlines()
    assert any(re.match(r"  sisyphus ready: load \d+\.\d s, warm-up \d+\.\d{3} s, torch ", line) for line in lines)
    repeats = [line for line in lines if line.startswith("  repeat ")]
    assert len(repeats) == 2 and all(
        re.match(r"  repeat [12]/2 sisyphus : total \d+\.\d{3} s, first audio \d+ ms, audible \d+ ms", line)
        for line in repeats
    ), repeats
    assert "reference" not in done.stdout and "mode: Sisyphus only" in done.stdout
    report = json.loads(out.read_text())
    assert list(report["runs"]) == ["sisyphus"] and list(report["summary"]) == ["sisyphus"]
    assert report["info"]["ref"] is None and report["config"]["ours_only"] is True
    runs, ours = report["runs"]["sisyphus"], report["summary"]["sisyphus"]
    assert [r["frames"] for r in runs] == [6, 6] and ours["audio_s"] == pytest.approx(0.48)
    for run in runs:
        # Tiny random weights are loud from the first sample: heard as soon as the first chunk plays.
        assert 0 < run["first_audio_s"] <= run["audible_first_audio_s"] < run["first_audio_s"] + 0.05
    assert ours["silent_replies"] == 0 and ours["audible_first_audio_ms"] > 0
