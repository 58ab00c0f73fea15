"""gpu_summary.py reads what gpu_check.sh wrote: checked on the files of the first H200 run
(kept in benchmarks/results/), rebuilt into an OUTDIR."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "benchmarks" / "results" / "2026-11-27-nvidia-h200-run1.json"


def outdir_of(run: dict, folder: Path) -> Path:
    folder.mkdir()
    for name in ("bench", "asr_generate", "tts_stream"):
        (folder / f"{name}.json").write_text(json.dumps(run[name]))
    (folder / "env.log").write_text("\n".join(run["machine"]) + "\n")
    (folder / "tests.log").write_text(run["tests"].removeprefix("tests: ") + "\n")
    return folder


def test_the_table_and_bundle_carry_the_runs_figures(tmp_path):
    run = json.loads(RUN.read_text())
    outdir_of(run, tmp_path / "out")
    bundle = tmp_path / "bundle.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_summary.py"), str(tmp_path / "out"),
                             "--bundle", str(bundle)], capture_output=True, text=True, check=True)
    table = result.stdout
    assert "NVIDIA H200" in table and "bf16" in table
    assert "| ASR, 5 s utterance (ms) | 276.6 (p90 282.4) | ≤ 60 | NOT met |" in table
    assert "| TTS real-time factor, preset | 0.317 (p90 0.322) | ≤ 0.08 | NOT met |" in table
    assert "| asr_generate 5 s: compiled / generate (ms) | 154.6 / 508.1 | | ids identical: no |" in table
    assert "tests: 1 failed, 3 passed" in table
    written = json.loads(bundle.read_text())
    assert written["summary_md"].strip() == table.strip()
    assert written["bench"] == run["bench"] and written["tts_stream"] == run["tts_stream"]


def test_missing_steps_say_not_measured(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_summary.py"), str(tmp_path)],
                            capture_output=True, text=True, check=True)
    assert "not measured" in result.stdout
