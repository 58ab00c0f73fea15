"""The reference qwen-tts package as a test oracle, run in its own virtual environment.

The reference needs transformers 4.57.3 and Sisyphus needs transformers 5, so the oracle
runs in a subprocess of a separate venv that `build_reference_env.sh` builds once and
caches (SISYPHUS_REF_VENV, default ~/.cache/sisyphus/qwen-tts-ref).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build_reference_env.sh"


@functools.cache
def reference_python() -> Path:
    """Path of the reference venv's python, building the venv on first use."""
    env = dict(os.environ, PYTHON=sys.executable)
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], env=env, check=True, capture_output=True, text=True
    )
    venv = Path(out.stdout.strip().splitlines()[-1])
    return venv / "bin" / "python"


def run_reference(script: str | Path, *args: str, timeout_s: float = 1200) -> str:
    """Run `script` (a file under tests/oracle/) with the reference python; return stdout."""
    cmd = [str(reference_python()), str(script), *map(str, args)]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"reference script {script} failed:\n{proc.stderr[-4000:]}")
    return proc.stdout
